"""Starting, pinning, measuring and stopping the servers the comparison runs, on loopback.

A ``Launched`` server is one process (no workers) started by ``apps/serve.py`` or nginx with
``master_process off``, pinned to one core, so its CPU time (utime + stime from
/proc/PID/stat) and resident memory (VmRSS from /proc/PID/status) are the server's alone.
Peers are optional: ``available()`` says which can run here and why not the others.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SERVERS",
    "Launched",
    "ServerSpec",
    "available",
    "cpu_seconds",
    "free_port",
    "open_idle",
    "idle_connection_memory",
    "make_certificates",
    "nginx_config",
    "nginx_path",
    "pin_prefix",
    "wait_listening",
]

APPS = Path(__file__).parent / "apps"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ServerSpec:
    """One row of the comparison."""

    name: str
    kind: str  # apps/serve.py KIND, or "nginx"
    needs: tuple[str, ...] = ()  # Python modules it needs
    access_log: bool = False
    reference: bool = False  # a floor or a ceiling, not a peer a user would pick
    scenarios: tuple[str, ...] | None = None  # None: every scenario
    note: str = ""
    args: tuple[str, ...] = ()  # more arguments for apps/serve.py
    launcher: str = "benchmarks.apps.serve"  # the module that starts it (kind is its KIND)


SERVERS = (
    ServerSpec("framework", "ours", note="this package (App + Server), access log off"),
    ServerSpec(
        "framework + access log",
        "ours",
        access_log=True,
        scenarios=("hello",),
        note="access log on, written to a file",
    ),
    ServerSpec(
        "framework, h11 only",
        "ours",
        args=("--h11-only",),
        note="the plain-message path off: h11 reads every request",
    ),
    ServerSpec(
        "framework (lazy tasks)",
        "ours",
        args=("--lazy-tasks",),
        scenarios=("hello", "json"),
        note="request tasks scheduled by the loop, not started eagerly (as on Python 3.11)",
    ),
    ServerSpec("uvicorn h11", "uvicorn-h11", ("uvicorn", "starlette"), note="Starlette app"),
    ServerSpec(
        "uvicorn httptools",
        "uvicorn-httptools",
        ("uvicorn", "starlette", "httptools"),
        note="Starlette app",
    ),
    ServerSpec("hypercorn", "hypercorn", ("hypercorn", "starlette"), note="Starlette app"),
    ServerSpec("aiohttp.web", "aiohttp", ("aiohttp",)),
    ServerSpec("nginx", "nginx", reference=True, note="the ceiling: C, one worker"),
    *(
        ServerSpec(
            f"ASGI hello: {name}",
            kind,
            needs,
            scenarios=("hello",),
            note="the same raw ASGI app (apps/asgi_hello.py)"
            if kind != "asgi-native"
            else "the native route with the same response, for the adapter's cost",
            launcher="benchmarks.apps.serve_asgi",
        )
        for name, kind, needs in (
            ("framework", "asgi-ours", ()),
            ("framework native twin", "asgi-native", ()),
            ("uvicorn httptools", "asgi-uvicorn-httptools", ("uvicorn", "httptools")),
            ("uvicorn h11", "asgi-uvicorn-h11", ("uvicorn",)),
            ("hypercorn", "asgi-hypercorn", ("hypercorn",)),
            ("Granian", "asgi-granian", ("granian",)),
        )
    ),
    ServerSpec(
        "bare uvloop TLS",
        "bare",
        reference=True,
        scenarios=("hello",),
        note="floor: fixed bytes per read, no parsing",
    ),
    ServerSpec(
        "bare uvloop TLS, framework context",
        "bare",
        reference=True,
        scenarios=("hello",),
        args=("--framework-tls",),
        note="the same floor with this package's SSLContext (for memory per connection)",
    ),
    ServerSpec(
        "bare h11",
        "bare-h11",
        reference=True,
        scenarios=("hello",),
        note="floor: a Protocol + h11, no framework",
    ),
)


def available(spec: ServerSpec) -> str | None:
    """None when ``spec`` can run here, else why not (an optional extra is missing)."""
    if spec.kind == "nginx":
        return None if nginx_path() else "nginx is not installed (apt-get install nginx-light)"
    missing = [m for m in spec.needs if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed (pip install -e '.[bench]')"
    return None


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def nginx_config(prefix: Path | str, http: str, *, worker_connections: int = 4096) -> str:
    """The configuration of one nginx process in the foreground (no master, no access log).

    Its pid, error log and temporary files go under ``prefix``; ``http`` is the rest of its
    ``http`` block: the ``server`` blocks and any settings of their own.
    """
    http = http.strip("\n")
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {worker_connections}; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
{http}
}}
"""


def pin_prefix(core: int) -> list[str]:
    """``taskset -c CORE`` when there are two cores and taskset; otherwise nothing."""
    if (os.cpu_count() or 1) >= 2 and shutil.which("taskset"):
        return ["taskset", "-c", str(core)]
    return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_listening(
    process: subprocess.Popen[bytes], ports: Iterable[int], timeout: float = 10.0
) -> bool:
    """Wait until ``process`` accepts TCP connections on 127.0.0.1 at every one of ``ports``.

    Returns:
        True once it does; False when it exits first or ``timeout`` seconds pass.
    """
    ports = list(ports)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            for port in ports:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.02)  # polling a port the child is still binding
            continue
        return True
    return False


@dataclass
class Certificates:
    ca: Path
    cert: Path
    key: Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time process ``pid`` has used so far (from /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15 (1-based).
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def make_certificates(directory: Path) -> Certificates:
    """A CA for the run and one localhost certificate every server presents."""
    from framework import pki

    ca = pki.CertificateAuthority.create(directory / "ca", name="benchmark CA", force=True)
    ca.issue(["localhost", "127.0.0.1"]).write(
        directory / "server.pem", directory / "server.key", force=True
    )
    return Certificates(
        directory / "ca" / "ca.pem", directory / "server.pem", directory / "server.key"
    )


@dataclass
class Launched:
    """A running server process."""

    spec: ServerSpec
    port: int
    process: subprocess.Popen[bytes]
    workdir: Path
    log: Path
    _cpu_mark: float = field(default=0.0)

    @classmethod
    def start(
        cls,
        spec: ServerSpec,
        certs: Certificates,
        workdir: Path,
        core: int = 0,
        timeout: float = 30.0,
    ) -> Launched:
        """Start ``spec`` on a free port, pinned to ``core``, and wait until it accepts.

        Raises:
            RuntimeError: it exited or did not listen within ``timeout`` (its log is quoted).
        """
        port = free_port()
        workdir.mkdir(parents=True, exist_ok=True)
        log = workdir / f"{spec.kind}-{port}.log"
        if spec.kind == "nginx":
            argv = _nginx_argv(certs, workdir / "nginx", port)
        else:
            argv = [
                sys.executable,
                "-m",
                spec.launcher,
                spec.kind,
                "--port",
                str(port),
                "--cert",
                str(certs.cert),
                "--key",
                str(certs.key),
                "--no-tickets",
            ]
            if spec.access_log:
                argv += ["--access-log", str(workdir / f"access-{port}.log")]
            argv += spec.args
        env = dict(os.environ, PYTHONPATH=str(APPS.parent.parent), PYTHONUNBUFFERED="1")
        with open(log, "wb") as out:
            process = subprocess.Popen(
                pin_prefix(core) + argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=APPS.parent.parent,
            )
        server = cls(spec, port, process, workdir, log)
        if not wait_listening(process, [port], timeout):
            if process.poll() is not None:
                raise RuntimeError(f"{spec.name} exited ({process.returncode}): {server.tail()}")
            server.stop()
            raise RuntimeError(f"{spec.name} did not listen in {timeout:.0f} s: {server.tail()}")
        return server

    def tail(self, lines: int = 5) -> str:
        try:
            return " | ".join(self.log.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}"

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        return cpu_seconds(self.process.pid)

    def rss_bytes(self) -> int:
        """Resident memory of the server process."""
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        return 0  # pragma: no cover

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _nginx_argv(certs: Certificates, prefix: Path, port: int) -> list[str]:
    www = prefix / "www" / "bytes"
    www.mkdir(parents=True, exist_ok=True)
    for name, size in (("64k", 65536), ("1m", 1048576)):
        path = www / name
        if not path.exists() or path.stat().st_size != size:
            path.write_bytes(b"x" * size)
    (prefix / "body").mkdir(exist_ok=True)
    http = (APPS / "nginx.conf").read_text()
    for key, value in {
        "PREFIX": prefix,
        "PORT": port,
        "CERT": certs.cert,
        "KEY": certs.key,
        "TICKETS": "off",
    }.items():
        http = http.replace(f"@{key}@", str(value))
    path = prefix / f"nginx-{port}.conf"
    path.write_text(nginx_config(prefix, http))
    return [nginx_path() or "nginx", "-p", str(prefix), "-c", str(path)]


async def open_idle(
    port: int, ca: Path, count: int, concurrency: int = 100
) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    """Open ``count`` TLS connections, make one request on each, and leave them open."""
    from framework.http11 import NEED_DATA, Driver, EndOfMessage, Request, prepare
    from framework.tls import client_context

    ctx = client_context(str(ca))
    gate = asyncio.Semaphore(concurrency)
    request = prepare(Request(b"GET", b"/", [(b"host", f"localhost:{port}".encode())]))

    async def one() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with gate:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, ssl=ctx, server_hostname="localhost"
            )
            driver = Driver("client")
            writer.write(request.data)
            driver.record_sent(request)
            while True:
                event = driver.next_event()
                if event is NEED_DATA:
                    driver.receive_data(await reader.read(65536))
                elif type(event) is EndOfMessage:
                    return reader, writer

    return list(await asyncio.gather(*(one() for _ in range(count))))


def idle_connection_memory(server: Launched, ca: Path, count: int) -> float:
    """Resident memory the server grows by per idle TLS connection (after one request each).

    Connections are opened from a child thread's event loop in this process; measured before
    any server's keep-alive timeout (5 s at the shortest) can close them.
    """
    import uvloop

    before = server.rss_bytes()

    async def main() -> int:
        conns = await open_idle(server.port, ca, count)
        after = server.rss_bytes()
        for _, writer in conns:
            writer.transport.abort()
        return after

    after = uvloop.run(main())
    return (after - before) / count
