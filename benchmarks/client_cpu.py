"""CPU time per request of ``Client`` against our own server, both in this one process.

Sequential GETs of a 13-byte body over one kept-alive TLS connection; the figure is process
CPU time per request (client and server together), which a loaded machine disturbs far less
than wall-clock rates. Run it against two trees to compare a change (the script takes
``framework`` from ``PYTHONPATH``):

    PYTHONPATH=. python benchmarks/client_cpu.py --requests 3000
    PYTHONPATH=/path/to/other/tree python benchmarks/client_cpu.py --requests 3000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from framework import App, Client, Request, pki
from framework.server import Server
from framework.tls import CertificateStore

app = App()


@app.get("/")
async def hello(request: Request) -> str:
    return "Hello, world!"


async def measure(requests: int) -> float:
    """Microseconds of CPU per request, after a warm-up of 200."""
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ca = pki.CertificateAuthority.create(base / "ca", name="client cpu benchmark CA")
        ca.issue(["localhost"]).write(base / "cert.pem", base / "key.pem")
        store = CertificateStore(base / "cert.pem", base / "key.pem")
        async with Server(app, host="127.0.0.1", port=0, ssl=store) as server:
            url = f"https://localhost:{server.port}"
            async with Client(url, ca=base / "ca" / "ca.pem") as client:
                for _ in range(200):
                    await client.get("/")
                started = time.process_time()
                for _ in range(requests):
                    await client.get("/")
                return (time.process_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    args = parser.parse_args()
    print(f"{asyncio.run(measure(args.requests)):.1f} us CPU per request")


if __name__ == "__main__":
    main()
