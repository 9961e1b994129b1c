"""``framework load``: the installed command against real servers over TLS.

Our own server, the same server without the CA passed (every handshake refused), and a port
nobody listens on: the tool measures the first, and stops after a second on the others with the
first error verbatim. Progress is right from the first measured second; ``compare`` reads two
``--json`` results.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from framework.load import Settings, run
from framework.load.compare import compare
from framework.load.report import format_summary
from framework.load.runner import _Rate
from framework.messages import Request, Response
from tests.conftest import TLSFiles, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent


async def hello(request: Request) -> Response:
    return Response("Hello, world!")


def _load(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``python -m framework load ARGS`` (the console script's code path), from the root."""
    return subprocess.run(
        [sys.executable, "-m", "framework", "load", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_load_measures_our_server_and_compares_two_runs(
    tls_files: TLSFiles, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    with serve_in_thread(hello, tls_files) as server:
        for out in (a, b):
            done = _load(server.url + "/", "--ca", str(tls_files.ca_cert), "-c", "4", "-n",
                         "300", "-w", "0s", "--json", str(out))  # fmt: skip
            assert done.returncode == 0, done.stderr
            assert "300 requests answered" in done.stdout
            assert "errors   0" in done.stdout
    ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
    assert ra["tool"] == "framework.load"
    assert ra["ok"] == rb["ok"] == 300
    done = _load("compare", str(a), str(b))
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    ratio = rb["requests_per_second"] / ra["requests_per_second"]
    assert first.startswith(f"{b} vs {a}: throughput ×{ratio:.2f}")
    for key in ra["latency_us"]["percentiles"]:
        pa, pb = ra["latency_us"]["percentiles"][key], rb["latency_us"]["percentiles"][key]
        assert f"{key} ×{pb / pa:.2f}" in first
    assert "differ" not in done.stdout  # same settings


def test_compare_names_settings_that_differ_and_refuses_other_files(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "requests_per_second": 1000.0,
        "error_total": 0,
        "settings": {"url": "https://x/", "connections": 64},
        "latency_us": {"percentiles": {"p50": 100, "p99": 400}, "max": 900, "mean": 120},
    }
    other = {**base, "requests_per_second": 1500.0, "settings": {"url": "https://x/"}}
    other["settings"] = {"url": "https://x/", "connections": 8}
    text = compare(base, other)
    assert text.startswith("B vs A: throughput ×1.50, p50 ×1.00, p99 ×1.00")
    assert "connections 64 vs 8" in text
    (tmp_path / "bad.json").write_text('{"hello": 1}')
    done = _load("compare", str(tmp_path / "bad.json"), str(tmp_path / "missing.json"))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"framework load compare: error: {tmp_path / 'bad.json'} is not a result of framework "
        "load --json (see framework load compare --help)"
    ]


def test_without_the_ca_it_stops_after_a_second_with_the_hint(tls_files: TLSFiles) -> None:
    with serve_in_thread(hello, tls_files) as server:
        started = time.monotonic()
        done = _load(server.url + "/", "-c", "4", "-d", "30s", "-w", "0s")
        took = time.monotonic() - started
    assert done.returncode == 2
    assert took < 20, "a 30 s run was not stopped early"
    assert "requests/s" not in done.stdout + done.stderr  # no rate made of failures
    assert "saturated" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[0].startswith("framework load: stopped after 1 s: all ")
    assert "failed (tls), none was answered" in lines[0]
    assert (
        lines[1]
        .strip()
        .startswith(
            "certificate verify failed for localhost: unable to get local issuer certificate"
        )
    )
    assert "pass --ca path/to/ca.pem" in lines[1]
    assert "certs dev-ca" in lines[1]


@pytest.mark.parametrize("processes", ["1", "2"])
def test_nothing_listening_stops_after_a_second(tmp_path: Path, processes: str) -> None:
    port = _free_port()
    out = tmp_path / "r.json"
    done = _load(f"https://localhost:{port}/", "-c", "2", "-p", processes, "-d", "30s",
                 "-w", "0s", "--json", str(out))  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[1].strip() == (
        f"cannot connect to localhost:{port}: connection refused (is the server running there?)"
    )
    result = json.loads(out.read_text())
    assert result["stopped"]["kind"] == "connect"
    assert result["requests_per_second"] == 0
    # the count quoted is every process's: all measured failures but those of requests that
    # were in flight at the check (one a connection at most)
    count = result["stopped"]["count"]
    assert 0 < count <= result["errors"]["connect"] <= count + 2
    assert f"all {result['stopped']['count']:,} requests" in done.stderr


def test_failures_are_not_throughput_and_not_saturation(tls_files: TLSFiles) -> None:
    # A short run that fails throughout (it ends before the first-second check).
    port = _free_port()
    settings = Settings(
        url=f"https://localhost:{port}/", connections=2, requests=6, duration=None, warmup=0
    )
    result = run(settings)
    assert result["ok"] == 0
    assert result["error_total"] == 6
    assert result["requests_per_second"] == 0
    assert result["first_errors"]["connect"].startswith(f"cannot connect to localhost:{port}")
    # Even with the generator's core busy, failures are no reason to add processes.
    busy = {**result, "load_cpu_cores": 1.0}
    text = format_summary(busy)
    assert "no request was answered" in text
    assert "requests/s" not in text.split("latency")[0]
    assert "saturated" not in text
    assert "first connect error: cannot connect" in text
    assert "latency  none (no answers)" in text
    with serve_in_thread(hello, tls_files) as server:
        good = run(
            Settings(
                url=server.url + "/",
                ca=str(tls_files.ca_cert),
                connections=2,
                requests=50,
                duration=None,
                warmup=0,
            )  # fmt: skip
        )
    assert "saturated" in format_summary({**good, "load_cpu_cores": 1.0})
    assert "saturated" not in format_summary({**good, "load_cpu_cores": 0.5})


def test_rate_counts_the_first_measured_second_from_the_end_of_the_warm_up() -> None:
    rate = _Rate(warmup=1.0, now=0.0)
    assert rate.update(1986, True, now=1.0) == pytest.approx(1986)
    # the warm-up ended at 1.0 s and the counts restarted; 2,000 since then
    assert rate.update(2000, False, now=2.0) == pytest.approx(2000)
    assert rate.update(3998, False, now=3.0) == pytest.approx(1998)
    late = _Rate(warmup=1.0, now=0.0)
    late.update(1000, True, now=0.5)  # the last warm-up tick came early
    assert late.update(1500, False, now=2.0) == pytest.approx(1500)


@pytest.mark.slow
def test_progress_is_right_from_the_first_measured_second(tls_files: TLSFiles) -> None:
    ticks: list[tuple[float, bool]] = []

    def progress(elapsed: float, rps: float, p99: int, errors: int, warming: bool) -> None:
        ticks.append((rps, warming))

    with serve_in_thread(hello, tls_files) as server:
        settings = Settings(url=server.url + "/", ca=str(tls_files.ca_cert), connections=4,
                            duration=3.5, warmup=1.0, rate=400)  # fmt: skip
        result = run(settings, progress=progress)
    measured = [rps for rps, warming in ticks if not warming]
    assert len(measured) >= 2, ticks
    assert result["error_total"] == 0
    # Open loop at 400/s: every measured second shows about 400, the first one too.
    assert all(250 < rps < 600 for rps in measured), ticks


def test_bad_arguments_are_one_line() -> None:
    done = _load("https://localhost:1/", "-d", "2x")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "framework load: error: argument -d/--duration: not a duration: '2x' (try 30s, 500ms "
        "or 2m) (see framework load --help)"
    )
    listed = subprocess.run(
        [sys.executable, "-m", "framework", "--help"], capture_output=True, text=True, check=True
    )
    assert "load-test an HTTPS server" in listed.stdout
    alias = subprocess.run(
        [sys.executable, "-m", "framework.load", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert alias.stdout.startswith("usage: framework load")
