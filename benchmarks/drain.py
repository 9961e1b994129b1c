"""``python -m benchmarks.drain``: requests lost when a server is stopped under load.

Each run starts a server in a subprocess (``framework serve``, or uvicorn with the same
certificate and the raw ASGI hello app), runs ``benchmarks.load`` against it on kept-alive
connections, sends SIGTERM once the load is flowing, and counts what the load saw. A request
is *lost* when it was written on a connection the server had accepted (TCP connected) and got
no complete answer: a reset, an EOF, a failed handshake, a timeout or a broken answer. A
connection refused after the server stopped listening is not lost: nothing was accepted.

Examples::

    python -m benchmarks.drain --runs 4                 # ours and uvicorn, 4 SIGTERMs each
    python -m benchmarks.drain --server ours --runs 8 -c 64
    python -m benchmarks.drain --tool wrk --runs 4      # the same with wrk as the load
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framework.load.runner import run
from framework.load.settings import Settings

__all__ = ["DrainRun", "measure", "main"]

REPO = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT = 30.0
#: The kinds of ``benchmarks.load`` errors that are not a lost request.
NOT_LOST = ("connect", "status")
SERVERS = ("ours", "uvicorn")
_OURS_READY = re.compile(r"serving on https://localhost:(\d+)/")
_UVICORN_READY = re.compile(r"Uvicorn running on")


@dataclass
class DrainRun:
    """What one SIGTERM under load gave."""

    server: str
    answered: int = 0
    lost: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None
    exit_seconds: float = 0.0
    stderr: list[str] = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(server: str, cert: Path, key: str, graceful: float) -> tuple[list[str], int]:
    if server == "ours":
        return [
            sys.executable, "-m", "framework", "serve", "benchmarks.apps.asgi_hello:native",
            "--port", "0", "--certfile", str(cert), "--keyfile", key, "--no-access-log",
            "--graceful-timeout", f"{graceful:g}",
        ], 0  # fmt: skip
    port = _free_port()
    return [
        sys.executable, "-m", "uvicorn", "benchmarks.apps.asgi_hello:app", "--host",
        "127.0.0.1", "--port", str(port), "--ssl-certfile", str(cert), "--ssl-keyfile", key,
        "--no-access-log", "--timeout-graceful-shutdown", f"{graceful:g}", "--lifespan", "off",
    ], port  # fmt: skip


def _start(
    server: str, cert: Path, key: Path, graceful: float
) -> tuple[subprocess.Popen[str], int, list[str]]:
    command, port = _command(server, cert, str(key), graceful)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()
    found: list[int] = []
    pattern = _OURS_READY if server == "ours" else _UVICORN_READY

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line.rstrip("\n"))
            if not ready.is_set() and (m := pattern.search(line)):
                found.append(int(m.group(1)) if m.groups() else port)
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, name=f"{server}-stderr", daemon=True)
    reader.start()
    if not ready.wait(STARTUP_TIMEOUT) or not found:
        process.kill()
        process.wait(STARTUP_TIMEOUT)
        _close(process, reader)
        raise RuntimeError(f"{server} did not start: {lines[-10:]!r}")
    return process, found[0], lines, reader


def _close(process: subprocess.Popen[str], reader: threading.Thread) -> None:
    reader.join(STARTUP_TIMEOUT)
    if process.stderr is not None:
        process.stderr.close()


def measure_once(
    server: str,
    cert: Path,
    key: Path,
    ca: Path,
    *,
    connections: int = 32,
    duration: float = 4.0,
    graceful: float = 10.0,
    tool: str = "load",
) -> DrainRun:
    """Start ``server``, load it, SIGTERM it once the load flows; the counts of that run.

    ``tool`` is ``"load"`` (``benchmarks.load``, which tells a refused connection from a
    failed handshake) or ``"wrk"`` (which counts both as ``connect`` errors).
    """
    process, port, lines, reader = _start(server, cert, key, graceful)
    result = DrainRun(server, stderr=lines)
    flowing = threading.Event()
    report: dict[str, Any] = {}
    url = f"https://127.0.0.1:{port}/"
    if tool == "wrk":
        load = _wrk(url, connections, duration, graceful, flowing, report)
    else:
        load = _load(url, connections, duration, graceful, ca, flowing, report)
    loader = threading.Thread(target=load, name="drain-load", daemon=True)
    loader.start()
    try:
        flowing.wait(duration)
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        result.exit_code = process.wait(timeout=graceful + STARTUP_TIMEOUT)
        result.exit_seconds = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(STARTUP_TIMEOUT)
        _close(process, reader)
        loader.join(duration + graceful + STARTUP_TIMEOUT)
    errors = dict(report.get("errors", {}))
    result.errors = {k: v for k, v in errors.items() if v}
    result.lost = sum(v for k, v in errors.items() if k not in NOT_LOST)
    result.answered = int(report.get("requests", 0))
    return result


def _load(
    url: str,
    connections: int,
    duration: float,
    graceful: float,
    ca: Path,
    flowing: threading.Event,
    report: dict[str, Any],
) -> Callable[[], None]:
    settings = Settings(
        url=url,
        connections=connections,
        duration=duration,
        warmup=0.0,
        ca=str(ca),
        timeout=graceful + 5.0,
    )

    def progress(elapsed: float, rps: float, p99: int, errors: int, warming: bool) -> None:
        if rps > 0:
            flowing.set()

    def load() -> None:
        try:
            report.update(run(settings, progress=progress))
        finally:
            flowing.set()

    return load


# Each wrk thread says once that the load flows (2,000 answers), so the signal is sent under load.
_WRK_SCRIPT = """
local answers = 0
response = function(status, headers, body)
  answers = answers + 1
  if answers == 2000 then io.stdout:write("flowing\\n"); io.stdout:flush() end
end
"""
_WRK_COUNT = re.compile(r"(\d+) requests in")
_WRK_ERRORS = re.compile(r"connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_WRK_STATUS = re.compile(r"Non-2xx or 3xx responses: (\d+)")


def _wrk(
    url: str,
    connections: int,
    duration: float,
    graceful: float,
    flowing: threading.Event,
    report: dict[str, Any],
) -> Callable[[], None]:
    # wrk's own timeout (2 s) would count a busy machine's pause as lost requests; the server
    # has until its graceful timeout to answer, as with benchmarks.load.
    timeout = f"--timeout={graceful + 5.0:g}s"

    def load() -> None:
        with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
            script.write(_WRK_SCRIPT)
            script.flush()
            command = [
                "wrk", "-t2", f"-c{connections}", f"-d{max(1, round(duration))}s", timeout,
                "-s", script.name, url,
            ]  # fmt: skip
            try:
                done = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
                assert done.stdout is not None
                output = []
                for line in done.stdout:
                    if line.strip() == "flowing":
                        flowing.set()
                    else:
                        output.append(line)
                done.wait(STARTUP_TIMEOUT)
                done.stdout.close()
            finally:
                flowing.set()
        text = "".join(output)
        count = _WRK_COUNT.search(text)
        report["requests"] = int(count.group(1)) if count else 0
        errors = dict.fromkeys(("connect", "read", "write", "timeout", "status"), 0)
        if found := _WRK_ERRORS.search(text):
            for kind, value in zip(
                ("connect", "read", "write", "timeout"), found.groups(), strict=True
            ):
                errors[kind] = int(value)
        if found := _WRK_STATUS.search(text):
            errors["status"] = int(found.group(1))
        report["errors"] = errors

    return load


def measure(server: str, runs: int, **options: Any) -> list[DrainRun]:
    """``runs`` SIGTERMs under load against ``server`` with the development CA's certificate."""
    from framework.pki import dev_certificate

    dev = dev_certificate()
    return [
        measure_once(server, dev.cert_path, dev.key_path, dev.ca_cert_path, **options)
        for _ in range(runs)
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the comparison and print one line per run and a total per server."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.drain", description=__doc__)
    p.add_argument("--server", choices=(*SERVERS, "both"), default="both")
    p.add_argument("--runs", type=int, default=4, help="SIGTERMs per server (default 4)")
    p.add_argument("-c", "--connections", type=int, default=32)
    p.add_argument("-d", "--duration", type=float, default=4.0, help="load seconds per run")
    p.add_argument("--tool", choices=("load", "wrk"), default="load", help="the load generator")
    args = p.parse_args(argv)
    servers = SERVERS if args.server == "both" else (args.server,)
    for server in servers:
        results = measure(
            server,
            args.runs,
            connections=args.connections,
            duration=args.duration,
            tool=args.tool,
        )
        for r in results:
            print(
                f"{server:8} answered {r.answered:6}  lost {r.lost:3}  exit {r.exit_code} in "
                f"{r.exit_seconds:.2f} s  errors {r.errors}"
            )
        total = sum(r.lost for r in results)
        answered = sum(r.answered for r in results)
        print(f"{server:8} total: {total} lost of {answered + total} over {len(results)} SIGTERMs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
