"""The client through a real HTTP proxy (tinyproxy, on loopback): CONNECT tunnels to https
origins, forwarding to http ones, ``HTTPS_PROXY``/``NO_PROXY``, credentials and refusals."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from framework import Client, ProxyError, Timeout
from framework.client.connection import Origin
from framework.client.proxy import ProxyRoutes, parse_proxy
from framework.errors import ConnectError, ConnectTimeout
from tests.conftest import TLSFiles, require_tool
from tests.test_client import raw_handler, run
from tests.test_client_api import free_port, serving


@dataclass
class Proxy:
    url: str
    log: Path

    def requests(self) -> list[str]:
        """The request lines tinyproxy logged, in order."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [
            line.split("): ", 1)[1]
            for line in text.splitlines()
            if "Request (file descriptor" in line
        ]


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[Callable[..., Proxy]]:
    """Start tinyproxy on 127.0.0.1 with extra configuration lines; stopped by its PID."""
    binary = require_tool("tinyproxy")
    started: list[subprocess.Popen[bytes]] = []

    def start(*extra: str) -> Proxy:
        port = free_port()
        directory = tmp_path / f"tinyproxy-{port}"
        directory.mkdir()
        log = directory / "tinyproxy.log"
        config = directory / "tinyproxy.conf"
        config.write_text(
            "\n".join(
                [
                    f"Port {port}",
                    "Listen 127.0.0.1",
                    "Timeout 30",
                    f'LogFile "{log}"',
                    "LogLevel Connect",
                    "MaxClients 20",
                    "Allow 127.0.0.1",
                    *extra,
                ]
            )
            + "\n"
        )
        process = subprocess.Popen(
            [binary, "-d", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)
        deadline = time.monotonic() + 10
        while True:  # until it accepts connections, within the deadline
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"tinyproxy did not start (exit {process.poll()})"
                    ) from None
                time.sleep(0.02)
        return Proxy(f"http://127.0.0.1:{port}", log)

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


async def logged(proxy: Proxy, line: str) -> None:
    """Wait (bounded) until tinyproxy's log holds ``line``: it writes after forwarding."""
    for _ in range(200):
        if line in proxy.requests():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{line!r} not in tinyproxy's log: {proxy.requests()}")


def test_https_through_a_connect_tunnel(
    tls_files: TLSFiles, tinyproxy: Any, loop_name: str
) -> None:
    proxy = tinyproxy()

    async def main() -> None:
        async with serving(tls_files) as server:
            async with Client(ca=tls_files.ca_cert, proxy=proxy.url, trust_env=False) as client:
                url = f"https://localhost:{server.port}/who"
                first = await client.get(url, auth=("u", "p"))
                second = await client.get(url)
                assert (first.status, second.status) == (200, 200)
                # TLS is end to end: the certificate checked is the origin's, for its name.
                assert first.tls is not None
                assert first.tls.version.startswith("TLSv1.")
                assert first.json()["auth"].startswith("Basic ")
                await logged(proxy, f"CONNECT localhost:{server.port} HTTP/1.1")
                # One tunnel, reused for both requests.
                assert proxy.requests() == [f"CONNECT localhost:{server.port} HTTP/1.1"]

    run(main, loop_name)


def test_http_is_forwarded_in_absolute_form(tls_files: TLSFiles, tinyproxy: Any) -> None:
    proxy = tinyproxy()

    async def main() -> None:
        async with serving(tls_files, tls=False) as server:
            async with Client(proxy=proxy.url, trust_env=False) as client:
                url = f"http://localhost:{server.port}/echo?x=1"
                response = await client.post(url, json={"a": 1})
                assert response.json()["target"] == "/echo?x=1"  # the proxy made it origin-form
                assert response.json()["body"] == '{"a":1}'
                await logged(proxy, f"POST {url} HTTP/1.1")

    run(main)


def test_environment_proxy_and_no_proxy(
    tls_files: TLSFiles, tinyproxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = tinyproxy()
    for name in (
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
        "NO_PROXY",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)

    async def main() -> None:
        async with serving(tls_files) as server:
            url = f"https://localhost:{server.port}/who"
            monkeypatch.setenv("HTTPS_PROXY", proxy.url)
            async with Client(ca=tls_files.ca_cert) as client:
                assert (await client.get(url)).status == 200
            await logged(proxy, f"CONNECT localhost:{server.port} HTTP/1.1")
            # NO_PROXY sends the host direct: a dead proxy in HTTPS_PROXY is never tried.
            monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{free_port()}")
            for no_proxy in ("localhost", ".localhost", f"localhost:{server.port}", "*"):
                monkeypatch.setenv("NO_PROXY", no_proxy)
                async with Client(ca=tls_files.ca_cert) as client:
                    assert (await client.get(url)).status == 200, no_proxy
            monkeypatch.setenv("NO_PROXY", "localhost:1,example.com")
            async with Client(ca=tls_files.ca_cert) as client:
                with pytest.raises(ConnectError, match="cannot connect to the proxy"):
                    await client.get(url)
            async with Client(ca=tls_files.ca_cert, trust_env=False) as client:
                assert (await client.get(url)).status == 200  # the environment ignored
            monkeypatch.setenv("HTTPS_PROXY", "socks5://127.0.0.1:1080")
            with pytest.raises(ValueError, match="HTTPS_PROXY: .*only http:// proxies"):
                Client()

    run(main)


def test_proxy_refusing_connect_is_a_clear_error(tls_files: TLSFiles, tinyproxy: Any) -> None:
    proxy = tinyproxy("ConnectPort 443")  # tunnels to port 443 only

    async def main() -> None:
        async with serving(tls_files) as server:
            async with Client(
                ca=tls_files.ca_cert, proxy=proxy.url, trust_env=False, retries=3
            ) as client:
                loop = asyncio.get_running_loop()
                begin = loop.time()
                with pytest.raises(ProxyError) as caught:
                    await client.get(f"https://localhost:{server.port}/who")
                assert loop.time() - begin < 1.0  # a refusal is not retried
                assert caught.value.status == 403
                message = str(caught.value)
                assert (
                    f"{proxy.url} refused to tunnel to https://localhost:{server.port}" in message
                )
                assert "does not allow tunnels to this host or port" in message
                assert client.pool is not None
                assert client.pool.num_connections == 0

    run(main)


def test_proxy_credentials(tls_files: TLSFiles, tinyproxy: Any) -> None:
    proxy = tinyproxy("BasicAuth zoe s3cr3t")

    async def main() -> None:
        async with serving(tls_files) as server:
            url = f"https://localhost:{server.port}/who"
            async with Client(ca=tls_files.ca_cert, proxy=proxy.url, trust_env=False) as client:
                with pytest.raises(ProxyError, match="407 .*put them in its URL") as caught:
                    await client.get(url)
                assert caught.value.status == 407
            with_login = proxy.url.replace("http://", "http://zoe:s3cr3t@")
            async with Client(ca=tls_files.ca_cert, proxy=with_login, trust_env=False) as client:
                response = await client.get(url)
                # The proxy's credentials go to the proxy, not to the origin.
                assert (response.status, response.json()["auth"]) == (200, None)
        async with serving(tls_files, tls=False) as plain:
            url = f"http://localhost:{plain.port}/echo"
            async with Client(proxy=proxy.url, trust_env=False) as client:
                assert (await client.get(url)).status == 407  # forwarded: the proxy answers
            async with Client(proxy=with_login, trust_env=False) as client:
                response = await client.get(url)
                assert response.status == 200
                assert "proxy-authorization" not in dict(response.json()["headers"])

    run(main)


def test_unreachable_proxy_is_a_connect_error(tls_files: TLSFiles) -> None:
    async def main() -> None:
        dead = f"http://127.0.0.1:{free_port()}"
        async with Client(ca=tls_files.ca_cert, proxy=dead, trust_env=False) as client:
            with pytest.raises(ConnectError, match=f"cannot connect to the proxy {dead}"):
                await client.get("https://localhost:1/")

    run(main)


def test_no_proxy_rules_and_proxy_urls() -> None:
    https = parse_proxy("proxy.example:3128")
    assert (https.host, https.port, https.authorization) == ("proxy.example", 3128, None)
    assert parse_proxy("http://a%40b:p%3Ass@p/").authorization == b"Basic YUBiOnA6c3M="
    routes = ProxyRoutes(
        https, None, "example.com, .corp.test,10.0.0.0/8, ::1, [fd00::1]:8443, svc:8080"
    )

    def direct(scheme: str, host: str, port: int = 443) -> bool:
        return routes.for_origin(Origin(scheme, host, port)) is None

    assert direct("https", "example.com")
    assert direct("https", "api.example.com")
    assert not direct("https", "notexample.com")
    assert direct("https", "corp.test")
    assert direct("https", "a.b.corp.test")
    assert direct("https", "10.1.2.3")
    assert not direct("https", "11.0.0.1")
    assert direct("https", "::1")
    assert direct("https", "fd00::1", 8443)
    assert not direct("https", "fd00::1", 443)
    assert direct("https", "svc", 8080)
    assert not direct("https", "svc", 443)
    assert direct("http", "anything.test")  # no proxy for http:// here
    assert ProxyRoutes(https, https, "*").for_origin(Origin("https", "x.test", 443)) is None
    assert ProxyRoutes.from_env({"NO_PROXY": "x"}) is None
    lower_wins = ProxyRoutes.from_env({"HTTPS_PROXY": "http://up:1", "https_proxy": "http://low:2"})
    assert lower_wins is not None
    assert lower_wins.https == parse_proxy("http://low:2")
    cgi = {"REQUEST_METHOD": "GET", "HTTP_PROXY": "http://from-a-header:1"}
    assert ProxyRoutes.from_env(cgi) is None  # httpoxy: not trusted under CGI
    both = ProxyRoutes.from_env({"all_proxy": "http://p:1", "no_proxy": "x.test"})
    assert both is not None
    assert both.https == both.http == parse_proxy("http://p:1")
    with pytest.raises(ValueError, match="only http:// proxies"):
        parse_proxy("https://proxy.example:443")
    with pytest.raises(ValueError, match="no host"):
        parse_proxy("http://:3128")


def test_proxies_that_misbehave(tls_files: TLSFiles) -> None:
    """Hand-written proxies: closing without an answer, answering garbage, never answering."""

    async def closes(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.close()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    async def main() -> None:
        for handler, error, message in (
            (closes, ConnectError, "closed the connection before answering CONNECT"),
            (garbage, ConnectError, "answer is not HTTP"),
            (silent, ConnectTimeout, "through the proxy .* took longer than 0.3 s"),
        ):
            server = await asyncio.start_server(raw_handler(handler), "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                async with Client(
                    ca=tls_files.ca_cert,
                    proxy=f"http://127.0.0.1:{port}",
                    trust_env=False,
                    timeout=Timeout(connect=0.3),
                ) as client:
                    with pytest.raises(error, match=message):
                        await client.get("https://localhost:1/")
                    assert client.pool is not None
                    assert client.pool.num_connections == 0
            finally:
                server.close()
                await server.wait_closed()

    run(main)
