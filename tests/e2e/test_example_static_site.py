"""``framework serve examples.static_site:app`` as its docstring runs it, poked with curl."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import TLSFiles, require_tool
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, environment, serve_cli

pytestmark = pytest.mark.tool


def test_static_site_example(tls_files: TLSFiles, tmp_path: Path) -> None:
    curl = require_tool("curl")
    args = [
        "examples.static_site:app",
        "--port",
        "0",
        "--certfile",
        str(tls_files.server_cert),
        "--keyfile",
        str(tls_files.server_key),
    ]
    with serve_cli(args, env=environment(tmp_path / "home"), cwd=tmp_path) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        base = f"https://localhost:{port}"

        def get(*extra: str) -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [
                    curl,
                    "--silent",
                    "--show-error",
                    "--max-time",
                    "10",
                    "--cacert",
                    str(tls_files.ca_cert),
                    *extra,
                ],
                capture_output=True,
                timeout=30,
                check=True,
            )

        index = (REPO / "examples" / "public" / "index.html").read_bytes()
        css = (REPO / "examples" / "public" / "app.css").read_bytes()
        assert get(f"{base}/assets/").stdout == index
        assert get("-r", "0-99", f"{base}/assets/app.css").stdout == css[:100]
        head = get("-I", f"{base}/assets/app.css").stdout.lower()
        assert b"cache-control: public, max-age=3600" in head
        compressed = get("--compressed", "-i", f"{base}/api/items").stdout.lower()
        assert b"content-encoding: br" in compressed or b"content-encoding: gzip" in compressed
        preflight = get(
            "-i",
            "-X",
            "OPTIONS",
            "-H",
            "Origin: http://localhost:3000",
            "-H",
            "Access-Control-Request-Method: POST",
            f"{base}/api/items",
        ).stdout.lower()
        assert preflight.startswith(b"http/1.1 204")
        assert b"access-control-allow-origin: http://localhost:3000" in preflight
        assert running.stop() == 0
        assert not any("Traceback" in line for line in running.rest())


def test_static_site_example_under_uvicorn(tls_files: TLSFiles, tmp_path: Path) -> None:
    from tests.e2e.test_asgi_uvicorn import uvicorn

    curl = require_tool("curl")
    css_path = REPO / "examples" / "public" / "app.css"
    css = css_path.read_bytes()
    with uvicorn("examples.static_site:app", tls_files, "h11", tmp_path / "home") as port:
        base = f"https://localhost:{port}"

        def get(*extra: str) -> bytes:
            return subprocess.run(
                [
                    curl,
                    "--silent",
                    "--show-error",
                    "--max-time",
                    "10",
                    "--cacert",
                    str(tls_files.ca_cert),
                    *extra,
                ],
                capture_output=True,
                timeout=30,
                check=True,
            ).stdout

        assert get("-r", "0-99", f"{base}/assets/app.css") == css[:100]
        assert get("-z", str(css_path), "-w", "%{http_code}", f"{base}/assets/app.css") == b"304"
        head = get("-i", "-H", "Accept-Encoding: gzip", f"{base}/api/items").lower()
        assert b"content-encoding: gzip" in head
        assert b"vary: accept-encoding, origin" in head


def test_serve_with_a_missing_static_directory_names_it(tmp_path: Path) -> None:
    (tmp_path / "badstatic.py").write_text(
        'from framework import App\napp = App()\napp.static("/assets", "no-such-dir")\n'
    )
    env = environment(tmp_path / "home", tmp_path)
    with serve_cli(["badstatic:app", "--port", "0"], env=env, cwd=tmp_path) as running:
        assert running.process.wait(timeout=STARTUP_TIMEOUT) == 2
        lines = [line for line in running.rest() if line.strip()]
    # The first line says what is wrong and where; the app's own traceback follows it.
    assert lines[0].startswith("framework: error: importing 'badstatic' failed: ValueError:")
    assert "static directory 'no-such-dir'" in lines[0]
    assert str(tmp_path / "no-such-dir") in lines[0]
    assert any('badstatic.py", line 3' in line for line in lines[1:])
