"""What the testing helpers cost a test: the throwaway CA, and serving an app for one test.

Run it:  python -m benchmarks.testing_fixtures

Prints the median time to make a CA with a server and a client certificate, ECDSA P-256 (what
``ThrowawayCA`` uses) against RSA-2048 measured in the same run, and the median time for
``serve_app`` to start, answer one request through ``server.client()`` and stop, with a
shared CA (as the ``framework_server`` fixture does).
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import tempfile
import time

from framework import App, Request
from framework.pki import CertificateAuthority, KeyType
from framework.testing import ThrowawayCA, serve_app

ROUNDS = 20


def ca_seconds(key_type: KeyType) -> float:
    """Median seconds for a CA, a server and a client certificate of ``key_type``."""
    times = []
    for _ in range(5):
        directory = tempfile.mkdtemp()
        started = time.perf_counter()
        ca = CertificateAuthority.create(f"{directory}/ca", key_type=key_type)
        ca.issue(["localhost", "127.0.0.1", "::1"], key_type=key_type)
        ca.issue(["test-client"], client=True, key_type=key_type)
        times.append(time.perf_counter() - started)
        shutil.rmtree(directory)
    return statistics.median(times)


async def serve_seconds() -> float:
    """Median seconds for serve_app to start, answer one request and stop."""
    app = App()

    @app.get("/")
    async def root(request: Request) -> str:
        return "ok"

    times = []
    with ThrowawayCA() as ca:
        for _ in range(ROUNDS):
            started = time.perf_counter()
            async with serve_app(app, ca=ca) as server, server.client() as client:
                await client.get("/")
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    ec, rsa = ca_seconds("ec-p256"), ca_seconds("rsa-2048")
    print(
        f"CA + server + client certificate: ECDSA P-256 {ec * 1000:.1f} ms, "
        f"RSA-2048 {rsa * 1000:.1f} ms ({rsa / ec:.0f}x)"
    )
    served = asyncio.run(serve_seconds())
    print(f"serve_app start + one request + stop (shared CA): {served * 1000:.1f} ms")


if __name__ == "__main__":
    main()
