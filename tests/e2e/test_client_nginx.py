"""``Client`` against nginx (the Debian package) on loopback with a certificate from the test CA.

nginx is a server this project did not write: keep-alive reuse, Content-Length and chunked
(gzip) bodies, large downloads, request bodies both ways (nginx re-sends what it received to an
upstream with a Content-Length, which the upstream echoes), the ``Keep-Alive: timeout=`` hint,
and a server that closes idle connections early and after a few requests.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import random
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.servers import free_port, nginx_config, wait_listening
from framework.client import Client, Timeout
from framework.deploy import new_event_loop
from tests.conftest import TLSFiles, require_tool

pytestmark = pytest.mark.tool

MiB = 1024 * 1024

#: The inside of nginx's http block (``nginx_config`` adds the rest).
HTTP = """
    types {{ text/plain txt; application/octet-stream bin; }}
    default_type application/octet-stream;
    client_max_body_size 64m;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_protocols TLSv1.2 TLSv1.3;
    root {prefix}/www;

    server {{
        listen 127.0.0.1:{port} ssl;
        keepalive_timeout 2s 2;
        keepalive_requests 1000;
        location = /hello {{ default_type text/plain; return 200 "Hello, world!"; }}
        location /gzip/ {{
            alias {prefix}/www/;
            gzip on;
            gzip_min_length 0;
            gzip_types text/plain;
        }}
        location /upload {{
            proxy_http_version 1.1;
            proxy_pass http://127.0.0.1:{upstream_port};
        }}
    }}
    server {{
        listen 127.0.0.1:{short_port} ssl;
        keepalive_timeout 300ms;
        keepalive_requests 3;
        location = /hello {{ default_type text/plain; return 200 "Hello, world!"; }}
    }}
    server {{
        listen 127.0.0.1:{upstream_port};
        location / {{
            default_type text/plain;
            return 200 "length=$http_content_length te=$http_transfer_encoding";
        }}
    }}
"""


@dataclass(frozen=True)
class Nginx:
    """A running nginx: the TLS port, the port whose server closes idle connections early."""

    port: int
    short_port: int
    www: Path

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"


@pytest.fixture(scope="module")
def nginx(tls_files: TLSFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nginx]:
    binary = require_tool("nginx")
    prefix = tmp_path_factory.mktemp("nginx")
    www = prefix / "www"
    www.mkdir()
    rng = random.Random(1)
    (www / "1mib.bin").write_bytes(rng.randbytes(MiB))
    (www / "16mib.bin").write_bytes(rng.randbytes(16 * MiB))
    (www / "text.txt").write_text("".join(f"line {i}: the quick brown fox\n" for i in range(20000)))
    for _ in range(5):
        ports = {"port": free_port(), "short_port": free_port(), "upstream_port": free_port()}
        conf = prefix / "nginx.conf"
        http = HTTP.format(
            prefix=prefix, cert=tls_files.server_cert, key=tls_files.server_key, **ports
        )
        conf.write_text(nginx_config(prefix, http, worker_connections=256))
        proc = subprocess.Popen(
            [binary, "-c", str(conf), "-p", str(prefix)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if wait_listening(proc, ports.values()):
                yield Nginx(ports["port"], ports["short_port"], www)
                return
        finally:
            proc.kill()
            proc.wait()
    log = prefix / "error.log"
    pytest.fail(f"nginx did not start: {log.read_text() if log.exists() else 'no log'}")


def run(main: AsyncIterator[None] | object, loop_name: str = "asyncio") -> None:
    factory = new_event_loop if loop_name == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)  # type: ignore[arg-type]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_nginx_keep_alive_reuse(nginx: Nginx, tls_files: TLSFiles, loop_name: str) -> None:
    async def main() -> None:
        async with Client(nginx.url, ca=tls_files.ca_cert) as client:
            for _ in range(20):
                response = await client.get("/hello")
                assert response.text == "Hello, world!"
            assert response.headers["server"].startswith("nginx")
            pool = client.pool
            assert pool is not None
            assert pool.num_connections == 1
            (conn,) = pool._connections
            assert conn.requests == 20
            # Concurrent requests open more, bounded by the pool.
            results = await asyncio.gather(*(client.get("/hello") for _ in range(50)))
            assert {r.status for r in results} == {200}
            assert 1 <= pool.num_connections <= 50
            assert pool.num_active == 0

    run(main(), loop_name)


def test_nginx_content_length_and_chunked_bodies(nginx: Nginx, tls_files: TLSFiles) -> None:
    text = (nginx.www / "text.txt").read_bytes()
    binary = (nginx.www / "1mib.bin").read_bytes()

    async def main() -> None:
        async with Client(nginx.url, ca=tls_files.ca_cert) as client:
            response = await client.get("/1mib.bin")
            assert response.headers["content-length"] == str(MiB)
            assert "transfer-encoding" not in response.headers
            assert sha(await response.aread()) == sha(binary)
            # gzip makes nginx send the body chunked.
            response = await client.get("/gzip/text.txt")
            assert response.headers["transfer-encoding"] == "chunked"
            assert response.headers["content-encoding"] == "gzip"
            assert await response.aread() == text
            async with client.stream("GET", "/gzip/text.txt") as streamed:
                raw = b"".join([chunk async for chunk in streamed.aiter_raw()])
            assert len(raw) < len(text)
            assert gzip.decompress(raw) == text
            # Without Accept-Encoding nginx sends it plain.
            response = await client.get("/gzip/text.txt", headers={"accept-encoding": "identity"})
            assert "content-encoding" not in response.headers
            assert await response.aread() == text
            assert client.pool.num_connections == 1  # type: ignore[union-attr]

    run(main())


def test_nginx_large_downloads(nginx: Nginx, tls_files: TLSFiles, loop_name: str) -> None:
    expected = sha((nginx.www / "16mib.bin").read_bytes())

    async def main() -> None:
        async with Client(nginx.url, ca=tls_files.ca_cert) as client:
            digest = hashlib.sha256()
            size = 0
            async with client.stream("GET", "/16mib.bin") as response:
                async for chunk in response.aiter_bytes():
                    digest.update(chunk)
                    size += len(chunk)
            assert (size, digest.hexdigest()) == (16 * MiB, expected)
            bodies = await asyncio.gather(*(client.get("/1mib.bin") for _ in range(8)))
            assert {len(await b.aread()) for b in bodies} == {MiB}
            assert client.pool.num_active == 0  # type: ignore[union-attr]

    run(main(), loop_name)


def test_nginx_request_bodies(nginx: Nginx, tls_files: TLSFiles) -> None:
    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield os.urandom(10_000)

    async def main() -> None:
        async with Client(nginx.url, ca=tls_files.ca_cert) as client:
            # nginx decodes our chunked body and tells the upstream its exact length.
            response = await client.post("/upload", content=pieces())
            assert response.text == "length=1000000 te="
            response = await client.put("/upload", content=b"x" * (3 * MiB))
            assert response.text == f"length={3 * MiB} te="
            response = await client.post("/upload", json={"a": 1})
            assert response.text == "length=7 te="
            assert client.pool.num_connections == 1  # type: ignore[union-attr]

    run(main())


def test_nginx_keep_alive_hint(nginx: Nginx, tls_files: TLSFiles) -> None:
    async def main() -> None:
        async with Client(nginx.url, ca=tls_files.ca_cert) as client:
            response = await client.get("/hello")
            assert response.headers["keep-alive"] == "timeout=2"
            (conn,) = client.pool._connections  # type: ignore[union-attr]
            assert conn.keep_alive_expiry == 1.0  # 2 s less the 1 s margin
            assert conn.expires_at - conn.idle_since == pytest.approx(1.0)

    run(main())


def test_nginx_closing_after_a_few_requests(nginx: Nginx, tls_files: TLSFiles) -> None:
    """``keepalive_requests 3``: nginx says ``Connection: close`` on every third response."""

    async def main() -> None:
        async with Client(f"https://localhost:{nginx.short_port}", ca=tls_files.ca_cert) as client:
            for _ in range(10):
                assert (await client.get("/hello")).status == 200
            assert client.pool.num_connections <= 1  # type: ignore[union-attr]

    run(main())


@pytest.mark.slow
def test_nginx_closing_idle_connections_early(
    nginx: Nginx, tls_files: TLSFiles, loop_name: str
) -> None:
    """nginx closes idle connections after 300 ms; the client keeps them for 10 s. No error
    reaches the caller: the close is noticed, or the request is replayed once."""

    async def main() -> None:
        rng = random.Random(2)
        async with Client(
            f"https://localhost:{nginx.short_port}",
            ca=tls_files.ca_cert,
            keep_alive_expiry=10,
            timeout=Timeout(read=5),
        ) as client:
            pool = client.pool
            assert pool is not None
            for _ in range(8):
                results = await asyncio.gather(*(client.get("/hello") for _ in range(4)))
                assert {r.status for r in results} == {200}
                # Idle for about as long as nginx allows: the close races the next request.
                await asyncio.sleep(rng.uniform(0.28, 0.34))
            # Noticed without a request: the EOF takes idle connections out of the pool.
            await client.get("/hello")
            for _ in range(100):
                if pool.num_connections == 0:
                    break
                await asyncio.sleep(0.01)
            assert pool.num_connections == 0

    run(main(), loop_name)
