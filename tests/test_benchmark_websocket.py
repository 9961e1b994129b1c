"""``benchmarks/websocket_echo.py`` measures what it says: a short run against two servers."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_websocket_echo_benchmark_reports_rates_cpu_and_memory(tmp_path: Path) -> None:
    servers = "framework"
    if importlib.util.find_spec("aiohttp") is not None:
        servers += ";aiohttp.web"
    out = tmp_path / "ws.json"
    args = ["-d", "0.5", "--sizes", "64", "-c", "4", "--idle", "50", "--servers", servers]
    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.websocket_echo", *args, "--json", str(out)],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = json.loads(out.read_text())
    assert set(figures) == set(servers.split(";"))
    for row in figures.values():
        assert row["64"]["rate"] > 10  # round trips happened, and were counted
        assert 0 < row["64"]["cpu_us"] < 100_000
        assert 0 < row["idle_kib"] < 10_000
    assert "| framework | 64 B |" in run.stdout
