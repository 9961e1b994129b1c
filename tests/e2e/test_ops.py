"""Operations over real TLS: the access log's fields, JSON lines, ``--log-config``, and proxies.

Proxy headers are sent by real clients (the stdlib over TLS, curl) from chosen loopback source
addresses (the whole of 127.0.0.0/8 is this machine's), and by a real nginx in front that sets
``X-Forwarded-For``/``X-Forwarded-Proto`` as its documentation says to.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.servers import free_port, nginx_config, wait_listening
from framework.messages import JSONResponse, Request, Response
from tests.conftest import TLSFiles, require_tool, serve_in_thread
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, environment, serve_cli

TIMEOUT = 10.0
# The text line: client, request line, status, bytes, duration, TLS version, SNI, subject.
LINE = re.compile(
    r'^(?P<client>\S+) - "(?P<request>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) '
    r'(?P<ms>\d+\.\d{3}ms|-) (?P<tls>\S+) (?P<sni>\S+) (?P<subject>-|"[^"]*")$'
)


async def who(request: Request) -> Response:
    """What the server made of the request: client, scheme, the whole URL."""
    if request.path == "/big":
        return Response(b"x" * 100_000)
    return JSONResponse(
        {"client": request.client, "scheme": request.scheme, "url": request.absolute_url}
    )


def exchange(
    port: int,
    context: ssl.SSLContext,
    head: bytes,
    *,
    source: str = "127.0.0.1",
) -> bytes:
    """Send one request head (``Connection: close``) from ``source``; every byte answered."""
    with socket.create_connection(("127.0.0.1", port), TIMEOUT, (source, 0)) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(head)
            data = b""
            for _ in range(10_000):
                chunk = tls.recv(65536)
                if not chunk:
                    return data
                data += chunk
    raise AssertionError("the answer never ended")


def get(path: str, *headers: str) -> bytes:
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def body_json(answer: bytes) -> Any:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    return json.loads(body)


def access_lines(caplog: pytest.LogCaptureFixture, count: int = 0) -> list[str]:
    """The access lines so far; with ``count``, once that many arrived (the server's thread
    logs a request just after writing its answer, so the client can be first)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        lines = [r.getMessage() for r in caplog.records if r.name == "framework.access"]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)  # polling, bounded by the deadline


# --- the access log --------------------------------------------------------------------------


def test_ops_access_line_has_bytes_duration_tls_sni_and_client_subject(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    context = tls_files.client_context(with_cert=True)
    secret_headers = ("Authorization: Bearer s3cr3t-token", "Cookie: session=c00kie-value")
    with (
        caplog.at_level(logging.INFO, logger="framework.access"),
        serve_in_thread(who, tls_files, client_cert="required", access_log=True) as server,
    ):
        answers = [
            exchange(server.port, context, get("/who", *secret_headers)),
            exchange(server.port, context, get("/big")),
        ]
    lines = access_lines(caplog)
    assert len(lines) == 2, lines
    for line, answer in zip(lines, answers, strict=True):
        found = LINE.match(line)
        assert found is not None, line
        assert found["client"] == "127.0.0.1"
        assert found["status"] == "200"
        assert int(found["bytes"]) == len(answer)  # every byte written: head and body
        assert 0 < float(found["ms"][:-2]) < 10_000
        assert found["tls"] in ("TLSv1.2", "TLSv1.3")
        assert found["sni"] == "localhost"
        assert found["subject"] == '"CN=test-client"'
    assert found["request"] == "GET /big HTTP/1.1"
    assert int(found["bytes"]) > 100_000
    text = caplog.text
    assert "s3cr3t-token" not in text
    assert "c00kie-value" not in text


def test_ops_access_log_json_lines(tls_files: TLSFiles, caplog: pytest.LogCaptureFixture) -> None:
    context = tls_files.client_context()
    hostile = '/a"b\\c%0a?q=%22'
    with (
        caplog.at_level(logging.INFO, logger="framework.access"),
        serve_in_thread(who, tls_files, access_log=True, access_log_format="json") as server,
    ):
        answer = exchange(server.port, context, get("/who", "Cookie: id=c00kie"))
        exchange(server.port, context, get(hostile))
        exchange(server.port, context, get("/" + "t" * 5000))
        exchange(server.port, context, b"BAD\x00 / HTTP/1.1\r\n\r\n")
    records = [r for r in caplog.records if r.name == "framework.access"]
    objects = [json.loads(r.getMessage()) for r in records]
    assert all("\n" not in r.getMessage() and r.getMessage().isascii() for r in records)
    first = objects[0]
    assert set(first) == {
        "time",
        "client",
        "method",
        "target",
        "http_version",
        "status",
        "bytes",
        "duration_ms",
        "tls_version",
        "sni",
        "client_cert",
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["time"])
    assert first["client"] == "127.0.0.1"
    assert (first["method"], first["target"], first["status"]) == ("GET", "/who", 200)
    assert first["bytes"] == len(answer)
    assert first["duration_ms"] > 0
    assert (first["tls_version"], first["sni"], first["client_cert"]) == (
        "TLSv1.3",
        "localhost",
        None,
    )
    assert objects[1]["target"] == hostile  # as received, JSON's escaping only
    assert len(objects[2]["target"]) < 1100
    assert objects[2]["target"].endswith("...[3977 more]")
    assert objects[3]["status"] == 400
    assert objects[3]["method"] is None
    assert records[0].access["status"] == 200  # type: ignore[attr-defined]
    assert "c00kie" not in caplog.text


@pytest.mark.tool
def test_ops_cli_json_access_log_with_curl(tmp_path: Path) -> None:
    curl = require_tool("curl")
    env = environment(tmp_path / "home")
    args = ["examples.hello:app", "--port", "0", "--access-log-format", "json"]
    with serve_cli(args, env=env, cwd=REPO) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        ca = running.wait_for(re.compile(r"curl --cacert (\S+) ")).group(1)
        mark = running.mark()
        for path in ("/", "/missing"):
            subprocess.run(
                [curl, "-sS", "-o", "/dev/null", "--cacert", ca, f"https://localhost:{port}{path}"],
                check=True,
                timeout=TIMEOUT,
            )
        found = running.wait_for(re.compile(r'^\{.*"target":"/missing"'), after=mark)
        line = json.loads(found.string)
        assert running.stop() == 0
    assert (line["status"], line["sni"], line["tls_version"][:5]) == (404, "localhost", "TLSv1")
    first = json.loads(next(s for s in running.seen[mark:] if s.startswith("{")))
    assert (first["target"], first["status"]) == ("/", 200)


# --- --log-config ----------------------------------------------------------------------------

DICT_CONFIG = {
    "version": 1,
    "formatters": {"plain": {"format": "CUSTOM %(name)s %(message)s"}},
    "handlers": {"file": {"class": "logging.FileHandler", "filename": "", "formatter": "plain"}},
    "loggers": {"framework": {"handlers": ["file"], "level": "INFO"}},
}

INI_CONFIG = """
[loggers]
keys=root,framework

[handlers]
keys=file

[formatters]
keys=plain

[logger_root]
level=WARNING
handlers=

[logger_framework]
level=INFO
handlers=file
qualname=framework
propagate=0

[handler_file]
class=FileHandler
args=({path!r},)
formatter=plain

[formatter_plain]
format=INI %(name)s %(message)s
"""


@pytest.mark.tool
@pytest.mark.parametrize("kind", ["json", "ini"])
def test_ops_log_config_file_takes_the_lines(tmp_path: Path, kind: str) -> None:
    curl = require_tool("curl")
    out = tmp_path / "framework.log"
    if kind == "json":
        config = tmp_path / "logging.json"
        DICT_CONFIG["handlers"]["file"]["filename"] = str(out)  # type: ignore[index]
        config.write_text(json.dumps(DICT_CONFIG))
        prefix = "CUSTOM"
    else:
        config = tmp_path / "logging.ini"
        config.write_text(INI_CONFIG.format(path=str(out)))
        prefix = "INI"
    env = environment(tmp_path / "home")
    args = ["examples.hello:app", "--port", "0", "--log-config", str(config)]
    with serve_cli(args, env=env, cwd=REPO) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        ca = running.wait_for(re.compile(r"curl --cacert (\S+) ")).group(1)
        subprocess.run(
            [curl, "-sS", "-o", "/dev/null", "--cacert", ca, f"https://localhost:{port}/"],
            check=True,
            timeout=TIMEOUT,
        )
        assert running.stop() == 0
    lines = out.read_text().splitlines()
    access = [line for line in lines if line.startswith(f"{prefix} framework.access ")]
    assert len(access) == 1, lines
    assert LINE.match(access[0].split(" ", 2)[2]), access[0]
    assert any(line == f"{prefix} framework stopped" for line in lines), lines
    # The file took the lines: none of them on stderr, where the default handler writes.
    assert not [line for line in running.rest() if "framework.access" in line]


BAD_CONFIGS = {
    "missing.json": (None, r"cannot read --log-config \S+missing\.json: No such file"),
    "broken.json": ('{"version": 1,', r"is not valid JSON: Expecting"),
    "list.json": ("[1, 2]", r"expected a JSON object .* not a list"),
    "noversion.json": (
        '{"handlers": {}}',
        r"--log-config \S+: dictionary doesn't specify a version",
    ),
    "badclass.json": (
        '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}',
        r"Unable to configure handler 'h'",
    ),
    "empty.ini": ("", r"--log-config \S+empty\.ini: \S+ is an empty file"),
    "nosections.ini": ("[other]\nx=1\n", r"nosections\.ini: missing section or key 'formatters'"),
    "badpath.ini": (
        INI_CONFIG.format(path="/nonexistent-dir/x.log"),
        r"No such file or directory: '/nonexistent-dir/x.log'",
    ),
    "garbage.ini": ("this is = not [an ini", r"is not an INI file: File contains no section"),
}


@pytest.mark.parametrize("name", sorted(BAD_CONFIGS))
def test_ops_bad_log_config_is_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    text, message = BAD_CONFIGS[name]
    config = tmp_path / name
    if text is not None:
        config.write_text(text)
    result = subprocess.run(
        [sys_executable(), "-m", "framework", "serve", "examples.hello:app", "--port", "0"]
        + ["--log-config", str(config)],
        cwd=REPO,
        env=environment(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("framework: error: "), lines
    assert re.search(message, lines[0]), lines[0]


def sys_executable() -> str:
    import sys

    return sys.executable


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("10.0.0.0/33", "'10.0.0.0/33' is no IP address or network"),
        ("localhost", "'localhost' is no IP address"),
    ],
)
def test_ops_bad_forwarded_allow_ips_is_one_line(tmp_path: Path, value: str, message: str) -> None:
    result = subprocess.run(
        [sys_executable(), "-m", "framework", "serve", "examples.hello:app"]
        + ["--forwarded-allow-ips", value],
        cwd=REPO,
        env=environment(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=STARTUP_TIMEOUT,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "--forwarded-allow-ips" in result.stderr
    assert message in result.stderr


# --- proxy headers ---------------------------------------------------------------------------


def test_ops_proxy_headers_from_a_trusted_peer(
    tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    context = tls_files.client_context()
    with (
        caplog.at_level(logging.INFO, logger="framework.access"),
        serve_in_thread(who, tls_files, access_log=True) as server,  # default: loopback
    ):
        by_xff = body_json(
            exchange(
                server.port,
                context,
                get("/who", "X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: http"),
            )
        )
        by_rfc = body_json(
            exchange(server.port, context, get("/who?x=1", 'Forwarded: for="[2001:db8::7]:61000"'))
        )
        plain = body_json(exchange(server.port, context, get("/who")))
    assert by_xff == {
        "client": ["203.0.113.9", 0],
        "scheme": "http",
        "url": "http://localhost/who",
    }
    assert by_rfc["client"] == ["2001:db8::7", 61000]
    assert by_rfc["url"] == "https://localhost/who?x=1"
    assert plain["client"][0] == "127.0.0.1"
    assert plain["scheme"] == "https"
    clients = [line.split(" ", 1)[0] for line in access_lines(caplog)]
    assert clients == ["203.0.113.9", "2001:db8::7", "127.0.0.1"]  # the log names the client


def test_ops_proxy_hostile_headers_over_tls_change_nothing(tls_files: TLSFiles) -> None:
    context = tls_files.client_context()
    floods = [
        ("X-Forwarded-For: " + "9" * 15_000,),  # one huge value, under the 16 KiB head limit
        tuple(f"X-Forwarded-For: 10.0.0.{i}, junk" for i in range(90)),  # many headers
        ('Forwarded: for="\\"' + ";" * 5000,),
        ("X-Forwarded-For: 127.0.0.1, " * 500,),
    ]
    with serve_in_thread(who, tls_files) as server:
        for headers in floods:
            seen = body_json(exchange(server.port, context, get("/who", *headers)))
            assert seen["client"][0] == "127.0.0.1"
            assert seen["scheme"] == "https"
        # The server still serves, and still believes a sane header after them.
        sane = exchange(server.port, context, get("/who", "X-Forwarded-For: 192.0.2.4"))
        assert body_json(sane)["client"] == ["192.0.2.4", 0]


@pytest.mark.parametrize("allow", ["127.0.0.1", "", "10.0.0.0/8"])
def test_ops_proxy_headers_from_an_untrusted_peer_change_nothing(
    tls_files: TLSFiles, allow: str, caplog: pytest.LogCaptureFixture
) -> None:
    context = tls_files.client_context()
    spoof = (
        "X-Forwarded-For: 203.0.113.9",
        "X-Forwarded-Proto: http",
        "Forwarded: for=198.51.100.1;proto=http",
    )
    with (
        caplog.at_level(logging.INFO, logger="framework.access"),
        serve_in_thread(who, tls_files, access_log=True, forwarded_allow_ips=allow) as server,
    ):
        seen = body_json(exchange(server.port, context, get("/who", *spoof), source="127.0.0.5"))
    assert seen["client"][0] == "127.0.0.5"
    assert seen["client"][1] > 0
    assert seen["scheme"] == "https"
    assert access_lines(caplog)[0].startswith('127.0.0.5 - "GET /who HTTP/1.1" 200 ')


def test_ops_proxy_headers_reach_an_asgi_app(tls_files: TLSFiles) -> None:
    from framework.asgi import ASGIHandler

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = json.dumps({"client": scope["client"], "scheme": scope["scheme"]}).encode()
        length = [(b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": length})
        await send({"type": "http.response.body", "body": body})

    context = tls_files.client_context()
    with serve_in_thread(ASGIHandler(app), tls_files) as server:  # type: ignore[arg-type]
        seen = body_json(
            exchange(server.port, context, get("/", "X-Forwarded-For: 192.0.2.1, 127.0.0.9"))
        )
    assert seen == {"client": ["192.0.2.1", 0], "scheme": "https"}


# --- behind nginx ----------------------------------------------------------------------------

NGINX_HTTP = """
    ssl_certificate {cert};
    ssl_certificate_key {key};
    proxy_http_version 1.1;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_ssl_trusted_certificate {ca};
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_ssl_server_name on;
    server {{
        listen 127.0.0.1:{tls_port} ssl;
        location / {{ proxy_pass https://127.0.0.1:{upstream}; }}
    }}
    server {{
        listen 127.0.0.1:{plain_port};
        location / {{ proxy_pass https://127.0.0.1:{upstream}; }}
    }}
"""


@pytest.fixture
def behind_nginx(
    tls_files: TLSFiles, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> Iterator[tuple[int, int]]:
    """Our server trusting only 127.0.0.1 (where nginx connects from), nginx in front of it."""
    binary = require_tool("nginx")
    with (
        caplog.at_level(logging.INFO, logger="framework.access"),
        serve_in_thread(who, tls_files, access_log=True, forwarded_allow_ips="127.0.0.1") as server,
    ):
        for _ in range(5):
            ports = {"tls_port": free_port(), "plain_port": free_port()}
            http = NGINX_HTTP.format(
                cert=tls_files.server_cert,
                key=tls_files.server_key,
                ca=tls_files.ca_cert,
                upstream=server.port,
                **ports,
            )
            conf = tmp_path / "nginx.conf"
            conf.write_text(nginx_config(tmp_path, http, worker_connections=64))
            proc = subprocess.Popen(
                [binary, "-c", str(conf), "-p", str(tmp_path)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                if wait_listening(proc, ports.values()):
                    yield ports["tls_port"], ports["plain_port"]
                    return
            finally:
                proc.kill()  # by its PID
                proc.wait()
        log = tmp_path / "error.log"
        pytest.fail(f"nginx did not start: {log.read_text() if log.exists() else 'no log'}")


def curl_json(url: str, ca: Path, *headers: str) -> Any:
    curl = require_tool("curl")
    command = [curl, "-sS", "--fail", "--interface", "127.0.0.5", "--cacert", str(ca), url]
    for header in headers:
        command += ["-H", header]
    result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=True)
    return json.loads(result.stdout)


@pytest.mark.tool
def test_ops_behind_nginx_the_real_client_and_scheme(
    behind_nginx: tuple[int, int], tls_files: TLSFiles, caplog: pytest.LogCaptureFixture
) -> None:
    tls_port, plain_port = behind_nginx
    https_url = f"https://localhost:{tls_port}/who"
    seen = curl_json(https_url, tls_files.ca_cert)
    assert seen == {
        "client": ["127.0.0.5", 0],
        "scheme": "https",
        "url": "https://localhost/who",
    }
    # The client's own X-Forwarded-For and Forwarded are to the left of what nginx appended.
    spoofed = curl_json(
        https_url, tls_files.ca_cert, "X-Forwarded-For: 203.0.113.9", "X-Forwarded-Proto: http"
    )
    assert spoofed["client"] == ["127.0.0.5", 0]
    assert spoofed["scheme"] == "https"
    two_stories = curl_json(https_url, tls_files.ca_cert, "Forwarded: for=203.0.113.9")
    assert two_stories["client"][0] == "127.0.0.1"  # not believed: nginx's own address
    # Plain HTTP to nginx, HTTPS from nginx to us: the scheme is the client's.
    plain = curl_json(f"http://localhost:{plain_port}/who", tls_files.ca_cert)
    assert plain["scheme"] == "http"
    assert plain["client"] == ["127.0.0.5", 0]
    clients = [line.split(" ", 1)[0] for line in access_lines(caplog, 4)]
    assert clients == ["127.0.0.5", "127.0.0.5", "127.0.0.1", "127.0.0.5"]
