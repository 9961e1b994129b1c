"""A large static file is streamed: the server's resident memory stays flat while curl
downloads 256 MiB of it whole, by range, and compressed."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import TLSFiles, require_tool
from tests.e2e.serve_cli import SERVING, STARTUP_TIMEOUT, environment, serve_cli

pytestmark = [pytest.mark.tool, pytest.mark.slow]

SIZE = 256 * 1024 * 1024
APP = """
import os
from framework import App, CompressionMiddleware

app = App()
app.middleware(CompressionMiddleware(media_types=["application/octet-stream"]))
app.static("/files", os.environ["STATIC_ROOT"])
"""


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


def test_large_file_download_keeps_memory_flat(tls_files: TLSFiles, tmp_path: Path) -> None:
    curl = require_tool("curl")
    root = tmp_path / "public"
    root.mkdir()
    with open(root / "big.bin", "wb") as file:
        file.truncate(SIZE)  # sparse: no disk needed
    (tmp_path / "static_site.py").write_text(APP)
    env = environment(tmp_path / "home", tmp_path)
    env["STATIC_ROOT"] = str(root)
    args = [
        "static_site:app",
        "--port",
        "0",
        "--certfile",
        str(tls_files.server_cert),
        "--keyfile",
        str(tls_files.server_key),
    ]
    with serve_cli(args, env=env, cwd=tmp_path) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        pid = running.process.pid
        url = f"https://localhost:{port}/files/big.bin"
        base = ["--silent", "--show-error", "--max-time", "60", "--cacert", str(tls_files.ca_cert)]
        # One small request first, so the baseline includes the first connection's costs.
        warm = subprocess.run([curl, *base, "-r", "0-9", url], capture_output=True, timeout=90)
        assert warm.stdout == b"\0" * 10
        before = memory_kib(pid, "VmRSS")
        for extra in ([], ["-r", "1000-" + str(SIZE - 1000)], ["--compressed"]):
            result = subprocess.run(
                [
                    curl,
                    *base,
                    *extra,
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code} %{size_download}",
                    url,
                ],
                capture_output=True,
                text=True,
                timeout=90,
                check=False,
            )
            assert result.returncode == 0, result.stderr
            status, size = result.stdout.split()
            if extra == ["--compressed"]:
                assert status == "200"
                assert int(size) < SIZE / 100  # zeros compress well: it was compressed
            else:
                assert status == ("206" if extra else "200")
                assert int(size) == (SIZE - 1999 if extra else SIZE)
        peak = memory_kib(pid, "VmHWM")
        # The file is 256 MiB; the server held at most a few pieces of it at a time.
        assert peak - before < 40 * 1024, (before, peak)
        assert running.stop() == 0
