"""The client against a hostile HTTPS server: malformed framing is an error, never a desync.

The server is hand-written (an ``asyncio`` TLS server on loopback sending fixed bytes, from
tests/test_client.py): it answers the first request with a response whose framing is broken
or ambiguous, and keeps the connection open, so the client must judge the bytes themselves
(no end of file to hide behind). Each must fail the request with ``ReadError``, leave nothing
in the pool to be reused, and a second request must be answered by a new connection.
"""

from __future__ import annotations

import asyncio

import pytest

from framework.client import Client
from framework.errors import ReadError
from tests.conftest import TLSFiles
from tests.test_client import assert_pool_empty, raw_handler, raw_serving, run
from tests.test_http11_checks import RESPONSES

GOOD = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ngood"
HOSTILE: dict[str, bytes] = {
    **RESPONSES,
    # A second response hidden in the body, for a client that reads Content-Length first.
    "CL and TE hiding a response": b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + GOOD,
    "obs-fold hiding TE": b"HTTP/1.1 200 OK\r\nX-A: a\r\n Transfer-Encoding: chunked\r\n"
    b"Content-Length: 5\r\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("h11_only", [False, True], ids=["plain", "h11"])
@pytest.mark.parametrize("name", HOSTILE.keys())
def test_client_refuses_hostile_response(name: str, h11_only: bool, tls_files: TLSFiles) -> None:
    served: list[int] = []

    @raw_handler
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        served.append(1)
        writer.write(HOSTILE[name] if len(served) == 1 else GOOD)
        await writer.drain()
        await reader.read()  # until the client closes

    async def main() -> None:
        async with raw_serving(tls_files, handle) as url:
            async with Client(ca=tls_files.ca_cert, h11_only=h11_only, timeout=5) as client:

                async def fetch() -> bytes:
                    return (await client.get(url)).content

                with pytest.raises(ReadError, match="malformed HTTP/1.1"):
                    await fetch()
                assert_pool_empty(client.pool)
                assert client.pool.num_connections == 0  # type: ignore[union-attr]
                assert await fetch() == b"good"
                assert len(served) == 2

    run(main)
