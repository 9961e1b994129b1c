"""The server's TLS policy over real TLS: Mozilla's profiles, key-exchange groups, session
resumption, HSTS, plain HTTP sent to the TLS port, and how failed handshakes are logged.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from framework import App, limits
from framework.app import hsts_value
from framework.messages import Request, Response
from framework.tls import CertificateStore, server_context
from tests.conftest import TLSFiles, require_tool
from tests.e2e.tls_helpers import TIMEOUT, get, plain_exchange, serving

REPO = Path(__file__).resolve().parents[2]
LOOPS = ["asyncio", "uvloop"]


def store(tls_files: TLSFiles, **options: object) -> CertificateStore:
    return CertificateStore(tls_files.server_cert, tls_files.server_key, **options)  # type: ignore[arg-type]


def client(tls_files: TLSFiles, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = tls_files.client_context()
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


# --- profiles ----------------------------------------------------------------------------


def test_intermediate_profile_serves_tls_1_2_and_1_3(tls_files: TLSFiles) -> None:
    with serving(store(tls_files)) as server:
        for version, name in (
            (ssl.TLSVersion.TLSv1_2, "TLSv1.2"),
            (ssl.TLSVersion.TLSv1_3, "TLSv1.3"),
        ):
            fetched = get(server.port, client(tls_files, version))
            assert fetched.data.startswith(b"HTTP/1.1 200 ")
            assert fetched.version == name


def test_modern_profile_serves_tls_1_3_only(tls_files: TLSFiles) -> None:
    with serving(store(tls_files, tls_profile="modern")) as server:
        assert get(server.port, client(tls_files, ssl.TLSVersion.TLSv1_3)).version == "TLSv1.3"
        with pytest.raises(ssl.SSLError, match="(?i)version|protocol"):
            get(server.port, client(tls_files, ssl.TLSVersion.TLSv1_2))


def test_unknown_profile_is_refused(tls_files: TLSFiles) -> None:
    with pytest.raises(ValueError, match="intermediate' or 'modern"):
        server_context(tls_files.server_cert, tls_files.server_key, tls_profile="old")  # type: ignore[arg-type]


def test_server_context_has_no_compression_and_no_renegotiation(tls_files: TLSFiles) -> None:
    ctx = server_context(tls_files.server_cert, tls_files.server_key)
    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.options & ssl.OP_NO_RENEGOTIATION
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12
    assert all(c["aead"] and c["kea"] == "kx-ecdhe" for c in tls12), tls12


# --- key-exchange groups -------------------------------------------------------------------


def s_client(port: int, tls_files: TLSFiles, *args: str) -> subprocess.CompletedProcess[str]:
    openssl = require_tool("openssl")
    return subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
         "-CAfile", str(tls_files.ca_cert), "-verify_return_error", *args],
        input="", capture_output=True, text=True, timeout=TIMEOUT,
    )  # fmt: skip


@pytest.mark.parametrize("loop", LOOPS)
def test_server_offers_only_the_profiles_key_exchange_groups(
    tls_files: TLSFiles, loop: str
) -> None:
    # TLS 1.3: each group alone; those outside the profile find nothing shared.
    # TLS 1.2 also needs the certificate's curve (P-256) among the client's groups, so there
    # the client lists another group first and gets P-256 unless that group is X25519.
    cases = [("-tls1_3", g, g) for g in ("X25519", "prime256v1", "secp384r1")]
    cases += [("-tls1_3", g, None) for g in ("X448", "secp521r1")]
    cases += [
        ("-tls1_2", "X25519:prime256v1", "X25519"),
        ("-tls1_2", "secp384r1:prime256v1", "prime256v1"),  # OpenSSL takes the server's order
        ("-tls1_2", "X448:prime256v1", "prime256v1"),
        ("-tls1_2", "secp521r1:prime256v1", "prime256v1"),
    ]
    shown = {"prime256v1": "ECDH, prime256v1", "secp384r1": "ECDH, secp384r1"}
    with serving(store(tls_files), loop=loop) as server:
        for version, groups, expected in cases:
            done = s_client(server.port, tls_files, version, "-groups", groups)
            if expected is None:
                # Refused in the handshake (asyncio's loop sends no alert, uvloop's does).
                assert done.returncode != 0, (version, groups, done.stdout[-500:])
                assert "Server Temp Key" not in done.stdout, done.stdout
            else:
                assert done.returncode == 0, (version, groups, done.stderr[-500:])
                temp_key = f"Server Temp Key: {shown.get(expected, expected)}"
                assert temp_key in done.stdout, (version, groups, done.stdout)


# Run under another interpreter: builds a server context with the package's group code (loaded
# from its file alone, so that interpreter needs none of the package's dependencies) and makes
# in-memory handshakes with clients that offer one group each.
GROUP_PROBE = r"""
import importlib.util, json, ssl, sys
spec = importlib.util.spec_from_file_location("native", sys.argv[1])
native = importlib.util.module_from_spec(spec); spec.loader.exec_module(native)
server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server.load_cert_chain(sys.argv[2], sys.argv[3])
assert native.set_groups(server, sys.argv[4])
result = {"version": sys.version.split()[0]}
for group in ("X25519", "prime256v1", "secp384r1", "X448", "secp521r1"):
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_verify_locations(sys.argv[5])
    assert native.set_groups(client, group)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    s = server.wrap_bio(bios[0], bios[1], server_side=True)
    c = client.wrap_bio(bios[2], bios[3], server_hostname="localhost")
    ok = None
    for _ in range(20):
        for side, out, into in ((c, bios[3], bios[0]), (s, bios[1], bios[2])):
            try:
                side.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
            except ssl.SSLError:
                ok = False
            into.write(out.read())
        if ok is False:
            break
        try:
            c.do_handshake(); s.do_handshake(); ok = True; break
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            continue
        except ssl.SSLError:
            ok = False; break
    result[group] = ok
print(json.dumps(result))
"""


def _interpreters() -> list[str]:
    found = [sys.executable]
    base = Path("/root/.pyenv/versions")
    for minor in ("3.12", "3.13"):
        found += sorted(
            str(p / "bin" / "python")
            for p in base.glob(f"{minor}*")
            if (p / "bin" / "python").exists()
        )[-1:]
    return found


@pytest.mark.parametrize(
    "python", _interpreters(), ids=lambda p: Path(p).parts[-3] if "pyenv" in p else "this"
)
def test_group_list_is_set_on_each_python(python: str, tls_files: TLSFiles) -> None:
    done = subprocess.run(
        [python, "-c", GROUP_PROBE, str(REPO / "framework" / "tls" / "native.py"),
         str(tls_files.server_cert), str(tls_files.server_key), limits.TLS_GROUPS,
         str(tls_files.ca_cert)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [result[g] for g in ("X25519", "prime256v1", "secp384r1")] == [True] * 3, result
    assert [result[g] for g in ("X448", "secp521r1")] == [False] * 2, result


def test_groups_fall_back_to_openssl_defaults_when_the_check_fails(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tls_files: TLSFiles
) -> None:
    from framework.tls import native

    monkeypatch.setattr(native, "_lib", None)
    monkeypatch.setattr(native.ssl, "OPENSSL_VERSION_NUMBER", 0x1)  # a libssl that differs
    monkeypatch.delattr(ssl.SSLContext, "set_groups", raising=False)
    with caplog.at_level(logging.DEBUG, logger="framework.tls"):
        ctx = server_context(tls_files.server_cert, tls_files.server_key)
    assert isinstance(ctx, ssl.SSLContext)
    assert not native.available()
    assert any("is not the one ssl uses" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(native, "_lib", None)  # the next test checks the real library anew


# --- sessions --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
@pytest.mark.parametrize("loop", LOOPS)
def test_a_second_connection_resumes_the_session(
    tls_files: TLSFiles, version: ssl.TLSVersion, loop: str
) -> None:
    ctx = client(tls_files, version)
    with serving(store(tls_files), loop=loop) as server:
        first = get(server.port, ctx)
        assert first.session is not None
        assert not first.session_reused
        second = get(server.port, ctx, session=first.session)
        assert second.data.startswith(b"HTTP/1.1 200 ")
        assert second.session_reused


def test_tls_1_2_resumes_by_session_id_without_tickets(tls_files: TLSFiles) -> None:
    ctx = client(tls_files, ssl.TLSVersion.TLSv1_2)
    ctx.options |= ssl.OP_NO_TICKET
    with serving(store(tls_files)) as server:
        first = get(server.port, ctx)
        assert first.session is not None
        assert not first.session.has_ticket
        assert get(server.port, ctx, session=first.session).session_reused
    with serving(store(tls_files, session_resumption=False)) as server:
        first = get(server.port, ctx)
        assert first.session is not None
        assert not get(server.port, ctx, session=first.session).session_reused


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_resumption_can_be_turned_off(tls_files: TLSFiles, version: ssl.TLSVersion) -> None:
    ctx = client(tls_files, version)
    with serving(store(tls_files, session_resumption=False)) as server:
        first = get(server.port, ctx)
        if first.session is not None:  # a session, but one the server will not resume
            second = get(server.port, ctx, session=first.session)
            assert second.data.startswith(b"HTTP/1.1 200 ")
            assert not second.session_reused


# --- HSTS --------------------------------------------------------------------------------------


def test_hsts_values() -> None:
    assert hsts_value(False) is None
    assert hsts_value(True) == "max-age=31536000"
    assert hsts_value(600) == "max-age=600"
    assert hsts_value("max-age=63072000; includeSubDomains; preload") == (
        "max-age=63072000; includeSubDomains; preload"
    )
    for bad in (-1, "includeSubDomains", "max-age=abc"):
        with pytest.raises(ValueError, match="max-age"):
            hsts_value(bad)


def _hsts_app() -> App:
    app = App(hsts=True)

    @app.get("/")
    async def index(request: Request) -> str:
        return "hi"

    @app.get("/own")
    async def own(request: Request) -> Response:
        return Response(b"", headers={"strict-transport-security": "max-age=5"})

    return app


def test_hsts_on_every_https_response_and_never_on_plain_http(tls_files: TLSFiles) -> None:
    app = _hsts_app()
    with serving(store(tls_files), app) as server:
        ok = get(server.port, client(tls_files)).data
        assert b"\r\nstrict-transport-security: max-age=31536000\r\n" in ok.lower()
    with serving(None, app) as server:
        plain = plain_exchange(
            server.port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert plain.startswith(b"HTTP/1.1 200 ")
        assert b"strict-transport-security" not in plain.lower()


def test_hsts_on_a_404_and_a_handlers_own_value_kept(tls_files: TLSFiles) -> None:
    import http.client

    with serving(store(tls_files), _hsts_app()) as server:
        conn = http.client.HTTPSConnection(
            "localhost", server.port, context=client(tls_files), timeout=TIMEOUT
        )
        try:
            for path, status, value in (
                ("/missing", 404, "max-age=31536000"),
                ("/own", 200, "max-age=5"),
            ):
                conn.request("GET", path)
                response = conn.getresponse()
                response.read()
                assert response.status == status
                assert response.getheader("strict-transport-security") == value
        finally:
            conn.close()


# --- plain HTTP and garbage on the TLS port ----------------------------------------------------


@pytest.mark.parametrize("loop", LOOPS)
def test_plain_http_to_the_tls_port_is_answered_400(
    tls_files: TLSFiles, loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="framework.server"):
        with serving(store(tls_files), loop=loop) as server:
            with socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                data = b""
                for _ in range(100):
                    if b"\r\n\r\n" in data and data.endswith(b"\n") and b"https://" in data:
                        break
                    chunk = sock.recv(4096)
                    assert chunk, data
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
                assert b"connection: close" in head.lower()
                assert int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) == len(
                    body
                )
                assert b"plain HTTP" in body
                assert body.count(b"\n") == 1
                # The client is done: the server closes as soon as it says so.
                sock.shutdown(socket.SHUT_WR)
                assert sock.recv(4096) == b""
    lines = [
        r for r in caplog.records if "plain HTTP request sent to the HTTPS port" in r.getMessage()
    ]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO


def test_curl_plain_http_to_the_tls_port_gets_400(tls_files: TLSFiles) -> None:
    curl = require_tool("curl")
    with serving(store(tls_files)) as server:
        done = subprocess.run(
            [curl, "-sS", "--max-time", "5", "-w", "\n%{http_code}", f"http://127.0.0.1:{server.port}/"],
            capture_output=True, text=True, timeout=TIMEOUT,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    body, _, status = done.stdout.rpartition("\n")
    assert status == "400"
    assert "this port speaks HTTPS" in body


@pytest.mark.parametrize("loop", LOOPS)
def test_garbage_instead_of_a_client_hello_is_closed_quietly(
    tls_files: TLSFiles, loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="framework.server"):
        with serving(store(tls_files), loop=loop) as server:
            for payload in (
                b"\x00\x01\x02garbage\r\n" * 20,
                b"\x16\x03\x01\x00\x05hello",
                b"SSH-2.0-x\r\n",
            ):
                assert plain_exchange(server.port, payload) == b""
            # still serving
            assert get(server.port, client(tls_files)).data.startswith(b"HTTP/1.1 200 ")
    loud = [
        r for r in caplog.records if r.levelno > logging.DEBUG and r.name.startswith("framework")
    ]
    assert loud == [], [r.getMessage() for r in loud]


# --- failed handshakes, summarised ------------------------------------------------------------


def test_failed_handshakes_are_summarised_at_info(
    tls_files: TLSFiles,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from framework import pki

    other = pki.CertificateAuthority.create(tmp_path / "other", name="another CA")
    untrusting = ssl.create_default_context(cafile=str(other.directory / "ca.pem"))

    def refused() -> list[str]:
        return [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.INFO and "TLS handshake" in r.getMessage()
        ]

    def seen() -> int:
        """Failures the server has handled: each is also a DEBUG line."""
        return sum(
            r.levelno == logging.DEBUG and "TLSV1_ALERT_UNKNOWN_CA" in r.getMessage()
            for r in caplog.records
        )

    def wait_for_server(count: int) -> None:
        # The client's alert reaches the server after the client has given up: each good
        # request in between lets the server's loop run; bounded in count and time.
        deadline = time.monotonic() + 5.0
        for _ in range(200):
            if seen() >= count or time.monotonic() > deadline:
                break
            assert get(server.port, client(tls_files)).data.startswith(b"HTTP/1.1 200 ")
        assert seen() == count

    with caplog.at_level(logging.DEBUG, logger="framework.server"):
        with serving(store(tls_files)) as server:
            for _ in range(3):
                with pytest.raises(ssl.SSLCertVerificationError):
                    get(server.port, untrusting)
            wait_for_server(3)
            assert len(refused()) == 1, refused()
            assert "unknown ca" in refused()[0]
            assert "does not trust the CA" in refused()[0]
            assert "framework certs dev-ca" in refused()[0]
            monkeypatch.setattr(limits, "TLS_FAILURE_LOG_INTERVAL", 0.0)
            with pytest.raises(ssl.SSLCertVerificationError):
                get(server.port, untrusting)
            wait_for_server(4)
    lines = refused()
    assert len(lines) == 2, lines
    assert lines[1].startswith("3 more TLS handshake(s) failed in the last"), lines
    assert "3 tlsv1 alert unknown ca" in lines[1]


# --- SIGHUP without TLS ----------------------------------------------------------------------


def test_sighup_with_no_tls_is_logged_and_ignored(tmp_path: Path) -> None:
    import re
    import signal

    from tests.e2e.serve_cli import environment, serve_cli

    serving_re = re.compile(r"framework: serving on http://localhost:(\d+)/")
    command = ["examples.hello:app", "--no-tls", "--port", "0", "--loop", "asyncio"]
    with serve_cli(command, env=environment(tmp_path / "home"), cwd=REPO) as served:
        port = int(served.wait_for(serving_re).group(1))
        mark = served.mark()
        os.kill(served.process.pid, signal.SIGHUP)
        served.wait_for(re.compile(r"INFO framework: SIGHUP: nothing to reload"), after=mark)
        assert served.process.poll() is None
        answer = plain_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 ")
        assert served.stop() == 0
    assert not any("Traceback" in line for line in served.seen)


# --- the command line ------------------------------------------------------------------------


def test_serve_tls_profile_modern_and_no_session_resumption(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    from tests.e2e.test_mtls import serving as serving_cli

    with serving_cli(
        "examples.hello:app",
        "--certfile", str(tls_files.server_cert),
        "--keyfile", str(tls_files.server_key),
        "--tls-profile", "modern",
        "--no-session-resumption",
        home=tmp_path / "home",
    ) as served:  # fmt: skip
        ctx = client(tls_files)
        fetched = get(served.port, ctx)
        assert fetched.version == "TLSv1.3"
        assert fetched.session is not None
        assert not fetched.session.has_ticket  # none was sent
        assert not get(served.port, ctx, session=fetched.session).session_reused
        with pytest.raises(ssl.SSLError):
            get(served.port, client(tls_files, ssl.TLSVersion.TLSv1_2))


def test_serve_client_crl_needs_client_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from framework.cli import main

    crl = tmp_path / "crl.pem"
    crl.write_text("")
    assert main(["serve", "examples.hello:app", "--client-crl", str(crl)]) == 2
    assert "--client-crl needs --client-ca" in capsys.readouterr().err
