"""HTTPS clients against one local nginx: ours, a bare asyncio+ssl+h11 loop, aiohttp, httpx.

Each client makes the same GETs of a 13-byte body, sequentially on one kept-alive connection and
with 64 requests in flight, in alternating rounds; the table gives the median requests/s and the
ratios. nginx runs on CPU 0 and the clients on CPU 1 when the machine has two.

Run:  python -m benchmarks.client_compare [--requests 20000] [--concurrency 64] [--rounds 3]
                                          [--loop asyncio|uvloop] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import h11

from framework import pki
from framework.client import Client

from .servers import free_port, nginx_config, nginx_path, wait_listening
from .tools import LOOPS, new_loop

PATH = "/hello"
BODY = b"Hello, world!"

#: The inside of nginx's http block (``nginx_config`` adds the rest): one route, PATH.
NGINX_HTTP = """
    keepalive_timeout 60s;
    keepalive_requests 1000000;
    ssl_session_tickets off;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        location = {path} {{ default_type text/plain; return 200 "{body}"; }}
    }}
"""


def start_nginx(workdir: Path) -> tuple[subprocess.Popen[bytes], int, Path]:
    """nginx on 127.0.0.1 with a certificate from our CA; returns (process, port, CA file)."""
    nginx = nginx_path()
    if nginx is None:
        sys.exit("nginx is not installed (apt-get install nginx-light)")
    ca = pki.CertificateAuthority.create(workdir / "ca", name="client benchmark CA")
    ca.issue(["localhost", "127.0.0.1"]).write(workdir / "cert.pem", workdir / "key.pem")
    for _attempt in range(5):
        port = free_port()
        conf = workdir / "nginx.conf"
        conf.write_text(
            nginx_config(
                workdir,
                NGINX_HTTP.format(
                    port=port,
                    cert=workdir / "cert.pem",
                    key=workdir / "key.pem",
                    path=PATH,
                    body=BODY.decode(),
                ),
            )
        )
        proc = subprocess.Popen(
            [nginx, "-c", str(conf), "-p", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if wait_listening(proc, [port]):
            if (os.cpu_count() or 1) > 1:
                os.sched_setaffinity(proc.pid, {0})
            return proc, port, workdir / "ca" / "ca.pem"
        proc.kill()
        proc.wait()
    sys.exit(f"nginx did not start; see {workdir / 'error.log'}")


# --- the clients -------------------------------------------------------------------------------

Runner = Callable[[str, Path, int, int], Awaitable[None]]


async def run_ours(url: str, ca: Path, requests: int, concurrency: int) -> None:
    async with Client(ca=ca, max_connections=max(concurrency, 1)) as client:
        await _spread(requests, concurrency, lambda: _ours_one(client, url))


async def _ours_one(client: Client, url: str) -> None:
    response = await client.get(url)
    assert response.status == 200
    assert response.content == BODY


class _Bare(asyncio.Protocol):
    """The floor: one h11 connection over the loop's TLS transport, a future per request."""

    # The headers our client sends, so both put the same bytes on the wire.
    headers = [
        ("host", "localhost"),
        ("user-agent", "framework"),
        ("accept", "*/*"),
        ("accept-encoding", "gzip, deflate"),
    ]

    def __init__(self) -> None:
        self.conn = h11.Connection(h11.CLIENT)
        self.waiter: asyncio.Future[bytes] | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                return
            if type(event) is h11.Data:
                self.body.append(event.data)
            elif type(event) is h11.EndOfMessage:
                assert self.waiter is not None
                self.waiter.set_result(b"".join(self.body))
                return

    async def get(self, target: str) -> bytes:
        conn = self.conn
        self.transport.write(
            conn.send(h11.Request(method="GET", target=target, headers=self.headers))
            + conn.send(h11.EndOfMessage())
        )
        self.body = []
        self.waiter = asyncio.get_running_loop().create_future()
        data = await self.waiter
        conn.start_next_cycle()
        return data


async def run_bare(url: str, ca: Path, requests: int, concurrency: int) -> None:
    context = ssl.create_default_context(cafile=str(ca))
    port = int(url.split(":")[2].split("/")[0])
    loop = asyncio.get_running_loop()
    conns = []
    for _ in range(concurrency):
        _, proto = await loop.create_connection(
            _Bare, "127.0.0.1", port, ssl=context, server_hostname="localhost"
        )
        conns.append(proto)

    async def worker(proto: _Bare, count: int) -> None:
        for _ in range(count):
            assert await proto.get(PATH) == BODY

    counts = _split(requests, concurrency)
    await asyncio.gather(*(worker(p, n) for p, n in zip(conns, counts, strict=True)))
    for proto in conns:
        proto.transport.close()


async def run_aiohttp(url: str, ca: Path, requests: int, concurrency: int) -> None:
    import aiohttp

    context = ssl.create_default_context(cafile=str(ca))
    connector = aiohttp.TCPConnector(ssl=context, limit=max(concurrency, 1))
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> None:
            async with session.get(url) as response:
                assert response.status == 200
                assert await response.read() == BODY

        await _spread(requests, concurrency, one)


async def run_httpx(url: str, ca: Path, requests: int, concurrency: int) -> None:
    import httpx

    context = ssl.create_default_context(cafile=str(ca))
    limits = httpx.Limits(max_connections=max(concurrency, 1))
    async with httpx.AsyncClient(verify=context, limits=limits) as client:

        async def one() -> None:
            response = await client.get(url)
            assert response.status_code == 200
            assert response.content == BODY

        await _spread(requests, concurrency, one)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


async def _spread(requests: int, concurrency: int, one: Callable[[], Awaitable[None]]) -> None:
    async def worker(count: int) -> None:
        for _ in range(count):
            await one()

    await asyncio.gather(*(worker(n) for n in _split(requests, concurrency)))


CLIENTS: dict[str, Runner] = {
    "framework": run_ours,
    "bare h11": run_bare,
    "aiohttp": run_aiohttp,
    "httpx": run_httpx,
}


def _measure(
    runner: Runner, url: str, ca: Path, requests: int, concurrency: int, loop_name: str
) -> float:
    with asyncio.Runner(loop_factory=lambda: new_loop(loop_name)) as runner_ctx:
        # A short warm-up (connections, TLS, caches) outside the timing.
        runner_ctx.run(runner(url, ca, min(200, requests), concurrency))
        start = time.perf_counter()
        runner_ctx.run(runner(url, ca, requests, concurrency))
        return requests / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", choices=LOOPS, default="asyncio")
    parser.add_argument(
        "--clients",
        default=",".join(CLIENTS),
        help="comma-separated subset of: " + ", ".join(CLIENTS),
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.clients.split(",") if name.strip()]
    for name in chosen:
        if name not in CLIENTS:
            parser.error(f"unknown client {name!r}; choose from {', '.join(CLIENTS)}")
    if (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {1})
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="client-bench-") as tmp:
        proc, port, ca = start_nginx(Path(tmp))
        url = f"https://localhost:{port}{PATH}"
        try:
            for mode, concurrency in (
                ("sequential", 1),
                (f"concurrency {args.concurrency}", args.concurrency),
            ):
                for round_ in range(args.rounds):
                    for name in chosen:
                        rate = _measure(
                            CLIENTS[name], url, ca, args.requests, concurrency, args.loop
                        )
                        results.setdefault(mode, {}).setdefault(name, []).append(rate)
                        print(
                            f"  {mode:>16} round {round_ + 1} {name:>10}: {rate:8.0f} req/s",
                            file=sys.stderr,
                            flush=True,
                        )
        finally:
            proc.kill()
            proc.wait()
    medians = {
        mode: {name: statistics.median(rates) for name, rates in by.items()}
        for mode, by in results.items()
    }
    print(_table(medians, args))
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "arguments": vars(args) | {"json": str(args.json)},
                    "rates": results,
                    "medians": medians,
                },
                indent=2,
            )
        )


def _table(medians: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    lines = [
        f"{args.requests} GETs of a {len(BODY)}-byte body from nginx over TLS, loop {args.loop}, "
        f"median of {args.rounds} rounds (requests/s)",
        "",
        "| mode | " + " | ".join(next(iter(medians.values()))) + " | ours/httpx | ours/aiohttp"
        " | ours/bare |",
        "|---" * (len(next(iter(medians.values()))) + 4) + "|",
    ]
    for mode, rates in medians.items():
        ours = rates.get("framework")

        def ratio(other: str, ours: float | None = ours, rates: dict[str, float] = rates) -> str:
            return f"{ours / rates[other]:.2f}x" if ours and rates.get(other) else "-"

        lines.append(
            f"| {mode} | "
            + " | ".join(f"{rate:,.0f}" for rate in rates.values())
            + f" | {ratio('httpx')} | {ratio('aiohttp')} | {ratio('bare h11')} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
