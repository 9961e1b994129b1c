"""``framework certs trust`` / ``untrust`` on this machine's real stores, as mkcert -install.

As root: the system store (Debian's ``update-ca-certificates``), the NSS database Chromium reads
(``~/.pki/nssdb``) and a Firefox profile's, under a HOME of the test's own. After ``trust``,
curl without ``--cacert`` and headless Chromium load the page of a server on the new
development CA; after ``untrust`` both refuse it. The system store is restored whatever
happens. As an ordinary user nothing in the system store changes and the exact commands to run
are printed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from framework.deploy.trust import SYSTEM_STORES
from tests.conftest import require_tool
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, environment, serve_cli

DEBIAN = SYSTEM_STORES[0]
NEW_CA = "framework: made a new local development CA in "
TRY_IT = re.compile(r"^framework: try it: curl")

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="changes the system trust store: run as root (as .ci/run does)"
)


def _framework(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "framework", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def system_store_restored() -> Iterator[None]:
    before = set(os.listdir(DEBIAN.directory))
    try:
        yield
    finally:
        added = set(os.listdir(DEBIAN.directory)) - before
        for name in added:
            (DEBIAN.directory / name).unlink()
        if added:
            subprocess.run([require_tool("update-ca-certificates")], check=True, timeout=120)


def _curl(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("curl"), "-sS", "--max-time", "10", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _chromium(url: str, home: Path) -> str:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        require_tool("chromium")
    assert browser is not None
    # A loaded page prints its DOM; a page that failed prints no DOM, and newer Chromium
    # says why on stderr ("Page load failed: net::ERR_...") where older ones printed an
    # error page. Either is an answer; a run that gave neither is tried again.
    stderr = ""
    for _attempt in range(3):
        done = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url],
            env={**os.environ, "HOME": str(home)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if done.stdout.strip():
            return done.stdout
        if "Page load failed" in done.stderr:
            return done.stderr
        stderr = done.stderr
    raise AssertionError(f"chromium printed no page in 3 runs; its last stderr:\n{stderr}")


def _nss_trust(certutil: str, db: Path, nickname: str) -> str | None:
    """The trust flags of ``nickname`` in the NSS database ``db``, or None when absent."""
    listed = subprocess.run(
        [certutil, "-L", "-d", f"sql:{db}"], capture_output=True, text=True, timeout=60, check=True
    )
    for line in listed.stdout.splitlines():
        if line.startswith(nickname):
            return line[len(nickname) :].strip()
    return None


@pytest.mark.slow
@pytest.mark.usefixtures("system_store_restored")
def test_trust_then_untrust_for_curl_and_chromium(tmp_path: Path) -> None:
    require_tool("update-ca-certificates")
    certutil = require_tool("certutil")
    home = tmp_path / "user"
    home.mkdir()
    # a Firefox profile's database, made by NSS's own tool as Firefox makes it
    firefox = home / ".mozilla" / "firefox" / "abcd1234.default-release"
    firefox.mkdir(parents=True)
    subprocess.run(
        [certutil, "-N", "-d", f"sql:{firefox}", "--empty-password"], check=True, timeout=60
    )
    env = {**environment(tmp_path / "fw"), "HOME": str(home)}
    with serve_cli(["examples.hello:app", "--port", "0"], env=env, cwd=REPO) as running:
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        running.wait_for(TRY_IT, timeout=10)
        # the first run made the CA and said how to trust it
        assert any(
            line.startswith(NEW_CA) and line.endswith("framework certs trust")
            for line in running.seen
        ), running.seen
        url = f"https://localhost:{port}/"
        assert _curl(url).returncode == 60  # not trusted yet
        assert "ERR_CERT_AUTHORITY_INVALID" in _chromium(url, home)

        trusted = _framework(env, "certs", "trust")
        assert trusted.returncode == 0, trusted.stderr
        lines = trusted.stdout.splitlines()
        assert lines[0].startswith(
            f"system store (Debian/Ubuntu/Alpine): installed {DEBIAN.directory}/framework-ca-"
        )
        assert lines[0].endswith(".crt, then ran update-ca-certificates")
        assert lines[1].startswith(f"browser store sql:{home}/.pki/nssdb: added 'framework")
        assert lines[2].startswith(f"browser store sql:{firefox}: added 'framework")
        nickname = lines[2].split("added '", 1)[1].split("'", 1)[0]
        assert _nss_trust(certutil, firefox, nickname) == "C,,"
        got = _curl(url)
        assert got.returncode == 0, got.stderr
        assert got.stdout == "Hello, world!"
        assert ">Hello, world!</pre>" in _chromium(url, home)
        load = _framework(env, "load", url, "-c", "1", "-n", "20", "-w", "0s")  # no --ca
        assert load.returncode == 0, load.stderr
        assert "20 requests answered" in load.stdout
        again = _framework(env, "certs", "trust")  # idempotent
        assert again.returncode == 0, again.stderr
        assert "already trusted" in again.stdout

        untrusted = _framework(env, "certs", "untrust")
        assert untrusted.returncode == 0, untrusted.stderr
        assert "system store (Debian/Ubuntu/Alpine): removed" in untrusted.stdout
        assert "removed 'framework" in untrusted.stdout
        assert _curl(url).returncode == 60
        assert _nss_trust(certutil, firefox, nickname) is None
        page = _chromium(url, home)
        assert "ERR_CERT_AUTHORITY_INVALID" in page
        assert "Hello, world!" not in page
        assert running.stop() == 0
    # a second start uses the same CA and does not announce it again
    with serve_cli(["examples.hello:app", "--port", "0"], env=env, cwd=REPO) as running:
        running.wait_for(SERVING, timeout=STARTUP_TIMEOUT)
        running.wait_for(TRY_IT, timeout=10)
        assert not any(line.startswith(NEW_CA) for line in running.seen)
        assert running.stop() == 0


@pytest.mark.usefixtures("system_store_restored")
def test_without_root_it_prints_the_commands_and_changes_nothing(tmp_path: Path) -> None:
    # A user namespace without a mapping: the command runs as uid 65534 (not root), which
    # is what it checks, with the same interpreter and files readable.
    unshare = require_tool("unshare")
    env = environment(tmp_path / "fw")
    made = _framework(env, "certs", "dev-ca")
    assert made.returncode == 0, made.stderr
    ca = Path(made.stdout.strip())
    before = sorted(os.listdir(DEBIAN.directory))
    home = tmp_path / "user"
    home.mkdir()
    done = subprocess.run(
        [unshare, "--user", sys.executable, "-m", "framework", "certs", "trust", "--ca", str(ca)],
        env={**env, "HOME": str(home)},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    todo = [line for line in done.stderr.splitlines() if "system store" in line]
    assert len(todo) == 1, done.stderr
    assert todo[0].startswith(
        f"to do: system store needs root: sudo install -m 644 {ca} {DEBIAN.directory}/framework-ca-"
    )
    assert todo[0].endswith(".crt && sudo update-ca-certificates")
    assert sorted(os.listdir(DEBIAN.directory)) == before
