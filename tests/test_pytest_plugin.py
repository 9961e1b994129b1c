"""The pytest plugin as a user meets it: pytest in a subprocess, the plugin found by entry point.

The example project (``examples/testing``) runs under ``pytester`` with its own test file; the
plugin is loaded through the ``pytest11`` entry point that ``pyproject.toml`` declares (when the
installed package predates it, through a ``.dist-info`` with that same entry point, which is
what ``pip install`` writes).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import tomllib
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "testing"

# Strict as a careful user's project is: unknown markers fail, and so does any warning (an
# unclosed socket's ResourceWarning among them).
INI = """\
[pytest]
addopts = --strict-markers -p no:cacheprovider
filterwarnings =
    error
    ignore:The configuration option "asyncio_default_fixture_loop_scope" is unset:DeprecationWarning
"""

# Wraps the plugin's fixture to note each server's port and the CA's directory, and a last test
# module checks that they are gone: nothing listens, no server thread runs.
CLEANUP_CONFTEST = """\
import pytest

SEEN = {"ports": [], "threads": 0}


@pytest.fixture
def framework_server(framework_server):
    SEEN["ports"].append(framework_server.port)
    yield framework_server
"""

CLEANUP_TEST = """\
import socket
import threading

from conftest import SEEN


def test_every_server_is_gone():
    assert SEEN["ports"], "no test used framework_server"
    for port in SEEN["ports"]:
        with socket.socket() as sock:
            sock.settimeout(2)
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens"
    left = [t.name for t in threading.enumerate() if t.name.startswith("framework-")]
    assert left == []
"""


def declared_entry_point() -> str:
    with (REPO / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    return str(project["entry-points"]["pytest11"]["framework"])


@pytest.fixture
def user_project(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A project holding the example, with the plugin installed as pip would install it."""
    assert declared_entry_point() == "framework.pytest_plugin"
    installed = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}.get(
        "framework"
    )
    if installed is None:
        site = tmp_path / "site"
        info = site / "framework_plugin_entry_point-0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: framework-plugin-entry-point\nVersion: 0\n"
        )
        (info / "entry_points.txt").write_text(
            f"[pytest11]\nframework = {declared_entry_point()}\n"
        )
        path = [str(site), str(REPO), os.environ.get("PYTHONPATH", "")]
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))
    # The fixtures' temporary files go to TMPDIR; pytest's own to --basetemp, elsewhere.
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmpdir))
    pytester.makeini(INI)
    for source in EXAMPLE.glob("*.py"):
        shutil.copy(source, pytester.path / source.name)
    return pytester


def run(project: pytest.Pytester, tmp_path: Path, *args: str) -> pytest.RunResult:
    return project.runpytest_subprocess(f"--basetemp={tmp_path / 'basetemp'}", *args, timeout=120)


def test_example_project_passes_and_leaves_nothing_behind(
    user_project: pytest.Pytester, tmp_path: Path
) -> None:
    if importlib.util.find_spec("pytest_asyncio") is None:
        message = "pytest-asyncio is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    user_project.makeconftest(CLEANUP_CONFTEST)
    user_project.makepyfile(test_zz_cleanup=CLEANUP_TEST)
    result = run(user_project, tmp_path, "-v")
    result.assert_outcomes(passed=8)
    for name in (
        "test_json_route",
        "test_streaming_route_streams",
        "test_lifespan_hooks_run_around_the_server",
        "test_mutual_tls",
        "test_handler_error_is_a_500_and_visible",
        "test_without_pytest_asyncio",
    ):
        result.stdout.fnmatch_lines([f"*::{name} PASSED*"])
    assert list((tmp_path / "tmpdir").iterdir()) == []  # the session CA's files are gone


@pytest.mark.slow  # pytest in a subprocess: about 2 s
def test_a_failing_handler_is_reported_in_the_failing_test(
    user_project: pytest.Pytester, tmp_path: Path
) -> None:
    user_project.makepyfile(
        test_fails="""
        import asyncio
        import pytest

        @pytest.mark.framework_app("myapp:app")
        def test_crash(framework_server):
            async def main():
                async with framework_server.client() as client:
                    return (await client.get("/crash")).status
            assert asyncio.run(main()) == 200
        """
    )
    result = run(user_project, tmp_path, "test_fails.py")
    result.assert_outcomes(failed=1)
    # The server's log, with the handler's traceback, is in the report of the failed test.
    result.stdout.fnmatch_lines(["*Captured log call*", "*RuntimeError: the store is on fire*"])


@pytest.mark.slow  # pytest in a subprocess: about 2 s
def test_marker_names_the_app_and_its_options(
    user_project: pytest.Pytester, tmp_path: Path
) -> None:
    user_project.makepyfile(
        test_marker="""
        import asyncio
        import pytest

        pytestmark = pytest.mark.framework_app("myapp:app", client_cert="required")

        def test_whoami(framework_server):
            async def main():
                async with framework_server.client() as client:
                    return (await client.get("/whoami")).json()
            assert asyncio.run(main()) == {"client": "test-client"}
        """
    )
    run(user_project, tmp_path, "test_marker.py").assert_outcomes(passed=1)


def test_without_an_app_the_error_says_how_to_give_one(
    user_project: pytest.Pytester, tmp_path: Path
) -> None:
    user_project.makepyfile(test_no_app="def test_it(framework_server):\n    pass\n")
    result = run(user_project, tmp_path, "test_no_app.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*override the framework_app fixture*"])


@pytest.mark.slow  # pytest in a subprocess: about 2 s
def test_plugin_costs_nothing_to_tests_that_do_not_use_it(
    user_project: pytest.Pytester, tmp_path: Path
) -> None:
    user_project.makepyfile(
        test_plain="""
        import sys

        def test_plain():
            # the plugin imported neither the package's parts nor cryptography
            assert "framework.pytest_plugin" in sys.modules
            assert "framework.testing" not in sys.modules
            assert "cryptography" not in sys.modules
        """
    )
    result = run(user_project, tmp_path, "--setup-show", "test_plain.py")
    result.assert_outcomes(passed=1)
    assert "framework_" not in result.stdout.str()  # no autouse fixture ran


@pytest.mark.slow  # pytest in a subprocess: about 2 s
def test_plugin_can_be_turned_off(user_project: pytest.Pytester, tmp_path: Path) -> None:
    user_project.makepyfile(test_off="def test_it(framework_server):\n    pass\n")
    result = run(user_project, tmp_path, "-p", "no:framework", "test_off.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'framework_server' not found*"])


def test_readme_example_is_the_example_project() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Testing your app", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    files = [(EXAMPLE / name).read_text() for name in ("myapp.py", "test_myapp.py")]
    assert blocks[:2] == files


@pytest.mark.slow  # pytest in a subprocess: about 2 s
def test_without_pytest_asyncio_sync_tests_work_and_the_client_fixture_says_why_not(
    user_project: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest-asyncio made unimportable, as in a project that does not install it.
    hidden = tmp_path / "hidden"
    (hidden / "pytest_asyncio").mkdir(parents=True)
    (hidden / "pytest_asyncio" / "__init__.py").write_text('raise ImportError("not installed")\n')
    path = [str(hidden), os.environ.get("PYTHONPATH", "")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in path if p))
    user_project.makepyfile(
        test_sync="""
        import asyncio
        import pytest

        pytestmark = pytest.mark.framework_app("myapp:app")

        def test_sync(framework_server):
            async def main():
                async with framework_server.client() as client:
                    return (await client.get("/items/1")).status
            assert asyncio.run(main()) == 200

        def test_client_fixture(framework_client):
            pass
        """
    )
    result = run(user_project, tmp_path, "-p", "no:asyncio", "test_sync.py")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*framework_client is an async fixture and needs pytest-asyncio*"])
