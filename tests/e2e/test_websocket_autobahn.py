"""Autobahn|Testsuite's fuzzing client against the WebSocket echo route: cases 1 to 10, and
the compression cases 12.1, 13.1 and 13.7.

The suite is Python 2.7 code (``autobahntestsuite`` on PyPI). The test finds a 2.7
interpreter (pyenv's, or ``python2.7`` on the PATH), installs the suite into a cache
directory the first time (``setuptools==44.1.1`` first, as the suite needs), runs it against
a server of ours on plain ``ws://`` loopback, and requires every case OK, NON-STRICT or
INFORMATIONAL: none FAILED, and every closing behaviour OK.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from framework import App, WebSocket
from tests.conftest import serve_in_thread

CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "framework-autobahn27"
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "8.*", "9.*", "10.*"]
COMPRESSION_CASES = ["12.1.*", "13.1.*", "13.7.*"]
RUN = (
    "import sys; from autobahntestsuite.wstest import run; "
    "sys.argv = ['wstest', '-m', 'fuzzingclient', '-s', sys.argv[1]]; run()"
)


def _python27() -> str:
    # pyenv's interpreter first: its shim on the PATH fails unless 2.7 is the selected version.
    candidates = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/2.7*/bin/python2.7")))
    candidates += [p for p in (shutil.which("python2.7"),) if p]
    for python in candidates:
        if subprocess.run([python, "-c", "pass"], capture_output=True).returncode == 0:
            return python
    message = "no Python 2.7 interpreter (pyenv install 2.7.18) for Autobahn|Testsuite"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


def _suite(python: str) -> Path:
    if (CACHE / "autobahntestsuite" / "wstest.py").exists():
        return CACHE
    CACHE.mkdir(parents=True, exist_ok=True)
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target"]
    env = dict(os.environ, PYTHONPATH=str(CACHE))
    for package in ("setuptools==44.1.1", "autobahntestsuite"):
        subprocess.run([*pip, str(CACHE), package], check=True, env=env, timeout=600)
    # pip --target skips the namespace-package .pth files: make zope importable.
    (CACHE / "zope" / "__init__.py").touch()
    return CACHE


def _echo_app() -> App:
    app = App()

    # The suite's case 9 sends messages of up to 16 MiB, over the 1 MiB default.
    @app.websocket("/", max_message_size=16 * 1024 * 1024)
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    return app


def _run_cases(cases: list[str], tmp_path: Path) -> dict[str, dict[str, object]]:
    """Every case's result from the fuzzing client against our echo route."""
    python = _python27()
    suite = _suite(python)
    with serve_in_thread(_echo_app(), None, loop="uvloop") as server:
        spec = tmp_path / "spec.json"
        spec.write_text(
            json.dumps(
                {
                    "outdir": str(tmp_path / "reports"),
                    "servers": [{"agent": "framework", "url": f"ws://127.0.0.1:{server.port}/"}],
                    "cases": cases,
                    "exclude-cases": [],
                    "exclude-agent-cases": {},
                }
            )
        )
        run = subprocess.run(
            [python, "-c", RUN, str(spec)],
            env=dict(os.environ, PYTHONPATH=str(suite)),
            capture_output=True,
            text=True,
            timeout=600,
        )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    results: dict[str, dict[str, object]] = json.loads(
        (tmp_path / "reports" / "index.json").read_text()
    )["framework"]
    return results


def _failed(results: dict[str, dict[str, object]]) -> dict[str, tuple[object, object]]:
    return {
        case: (result["behavior"], result["behaviorClose"])
        for case, result in results.items()
        if result["behavior"] not in ("OK", "NON-STRICT", "INFORMATIONAL")
        or result["behaviorClose"] not in ("OK", "INFORMATIONAL")
    }


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_autobahn_fuzzing_client_cases_1_to_10(tmp_path: Path) -> None:
    results = _run_cases(CASES, tmp_path)
    bad = _failed(results)
    print(f"\nAutobahn cases 1-10: {len(results)} run, {len(bad)} failed")
    assert len(results) == 301
    assert bad == {}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_autobahn_fuzzing_client_compression_subset(tmp_path: Path) -> None:
    # permessage-deflate: 12.1 (our compressor, default offer), 13.1 and 13.7 (the client's
    # window and context-takeover offers). About 3 minutes, nearly all of it the suite's own
    # Python 2.7 client compressing and masking (it used 3x the server's CPU here).
    results = _run_cases(COMPRESSION_CASES, tmp_path)
    bad = _failed(results)
    print(f"\nAutobahn cases 12.1, 13.1, 13.7: {len(results)} run, {len(bad)} failed")
    assert len(results) == 54
    assert bad == {}
