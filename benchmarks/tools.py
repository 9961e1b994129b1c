"""The load tools the comparison drives, each pinned to its own core: wrk, ours, and locust;
and the event loop the benchmarks' own clients run on (``new_loop``, from ``framework.load``).

Each ``run_*`` returns a ``Measured``: requests/s, p50, p99, errors. wrk and locust are
optional (``shutil.which``); ours is ``python -m framework.load`` in a child process, so it is
pinned like the others and measured the same way. wrk's own session resumption does not matter
here: every server runs with tickets and session caches off (``apps/serve.py --no-tickets``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from framework.load.runner import LOOPS, new_loop

from .servers import pin_prefix

__all__ = [
    "LOOPS",
    "Measured",
    "Scenario",
    "SCENARIOS",
    "new_loop",
    "run_locust",
    "run_ours",
    "run_wrk",
    "wrk_path",
]


@dataclass(frozen=True)
class Scenario:
    """One request pattern of the comparison."""

    name: str
    path: str
    title: str
    method: str = "GET"
    body_bytes: int = 0
    new_connection: bool = False


SCENARIOS = (
    Scenario("hello", "/", "HTTPS keep-alive, 13-byte Hello, world!"),
    Scenario("json", "/users/7", "JSON with a path parameter (/users/{id:int})"),
    Scenario("download-64k", "/bytes/64k", "64 KiB download"),
    Scenario("download-1m", "/bytes/1m", "1 MiB download"),
    Scenario("upload-1m", "/upload", "1 MiB upload (POST, body streamed)", "POST", 1048576),
    Scenario(
        "new-connection",
        "/",
        "new TLS connection per request, no session resumption",
        new_connection=True,
    ),
)


@dataclass
class Measured:
    """One run of one tool against one server and scenario."""

    tool: str
    requests_per_second: float
    p50_us: float
    p99_us: float
    requests: int
    errors: int
    server_cpu_us_per_request: float | None = None
    #: framework load only: the share of its cores it kept busy (near 1: it set the pace).
    load_cpu_share: float | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def wrk_path() -> str | None:
    return shutil.which("wrk")


_WRK_UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0, "m": 60_000_000.0}


def _wrk_time(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"unexpected wrk time {text!r}")
    return float(m.group(1)) * _WRK_UNITS[m.group(2)]


def parse_wrk(output: str) -> Measured:
    """Read requests/s, the 50 % and 99 % latencies and the error counts from ``wrk --latency``."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|99)%\s+(\S+)", output, re.M))
    errors = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if m:
        errors += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if m:
        errors += int(m.group(1))
    return Measured(
        "wrk", rps, _wrk_time(pct.get("50", "0us")), _wrk_time(pct.get("99", "0us")), total, errors
    )


def run_wrk(
    url: str, scenario: Scenario, seconds: float, connections: int = 64, core: int = 1
) -> Measured:
    """``wrk -t1 -cC -dS --latency`` (with a Lua script for the upload)."""
    argv = [
        *pin_prefix(core),
        wrk_path() or "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--latency",
        "--timeout",
        "10s",
    ]
    script = None
    if scenario.new_connection:
        argv += ["-H", "Connection: close"]
    if scenario.body_bytes:
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(
            f'wrk.method = "{scenario.method}"\n'
            f'wrk.body = string.rep("x", {scenario.body_bytes})\n'
            'wrk.headers["Content-Type"] = "application/octet-stream"\n'
        )
        script.close()
        argv += ["-s", script.name]
    try:
        out = subprocess.run(
            [*argv, url + scenario.path],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        if script is not None:
            Path(script.name).unlink()
    return parse_wrk(out)


def run_ours(
    url: str,
    scenario: Scenario,
    seconds: float,
    ca: Path,
    connections: int = 64,
    core: int = 1,
    warmup: float = 0.5,
    processes: int = 1,
) -> Measured:
    """``python -m framework.load`` in a child process pinned to ``core``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        argv = [
            *pin_prefix(core),
            sys.executable,
            "-m",
            "framework.load",
            url + scenario.path,
            "--ca",
            str(ca),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "-w",
            f"{warmup}s",
            "-q",
            "--json",
            str(out),
            "-p",
            str(processes),
        ]
        if scenario.new_connection:
            argv.append("--new-connection")
        if scenario.body_bytes:
            argv += ["-m", scenario.method, "--body", str(scenario.body_bytes)]
        proc = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=seconds + warmup + 60,
            cwd=Path(__file__).parent.parent,
        )
        if not out.exists():
            raise RuntimeError(f"framework.load failed ({proc.returncode}): {proc.stderr[-500:]}")
        result = json.loads(out.read_text())
    lat = result["latency_us"]
    return Measured(
        "load",
        result["requests_per_second"],
        lat["percentiles"]["p50"],
        lat["percentiles"]["p99"],
        result["requests"],
        result["error_total"],
        load_cpu_share=result["load_cpu_cores"] / processes,
    )


LOCUSTFILE = Path(__file__).parent / "locustfile.py"


def run_locust(url: str, seconds: float, users: int = 64, core: int = 1) -> Measured | str:
    """locust's FastHttpUser, headless, one process; or why it could not run."""
    locust = shutil.which("locust")
    if locust is None:
        return "locust is not installed (pip install locust)"
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "stats"
        argv = [
            *pin_prefix(core),
            locust,
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            f"{max(2, round(seconds))}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "ERROR",
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
        stats = Path(f"{prefix}_stats.csv")
        rows = stats.read_text().splitlines() if stats.exists() else []
    why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
    header = rows[0].split(",") if rows else []
    for row in rows[1:]:
        cells = dict(zip(header, row.split(","), strict=False))
        if cells.get("Name") == "Aggregated":
            try:
                return Measured(
                    "locust",
                    float(cells["Requests/s"]),
                    float(cells["50%"]) * 1000,
                    float(cells["99%"]) * 1000,
                    int(cells["Request Count"]),
                    int(cells["Failure Count"]),
                )
            except (KeyError, ValueError):  # "N/A" percentiles: no request succeeded
                return f"locust measured nothing ({why})"
    return f"locust wrote no statistics ({why})"
