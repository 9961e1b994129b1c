"""The ``serve --reload`` watchers and the directory they watch, on real files."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

from framework.deploy.reload import StatPoll, WatchfilesWatch, app_directory
from framework.errors import FrameworkError

TIMEOUT = 10.0


def touch(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_stat_poll_sees_python_files_change_and_skips_caches_and_environments(
    tmp_path: Path,
) -> None:
    touch(tmp_path / "app.py", "a = 1\n")
    touch(tmp_path / "pkg" / "mod.py", "b = 1\n")
    (tmp_path / "venv").mkdir()
    touch(tmp_path / "venv" / "pyvenv.cfg", "home = /usr\n")
    poll = StatPoll(tmp_path)
    assert poll.changes() == []
    touch(tmp_path / "app.py", "a = 2  # edited\n")
    touch(tmp_path / "pkg" / "new.py", "c = 1\n")
    assert poll.changes() == [tmp_path / "app.py", tmp_path / "pkg" / "new.py"]
    touch(tmp_path / "notes.txt", "not code\n")
    touch(tmp_path / "__pycache__" / "app.py", "")
    touch(tmp_path / ".git" / "hook.py", "")
    touch(tmp_path / "venv" / "lib" / "site.py", "")
    assert poll.changes() == []
    (tmp_path / "pkg" / "mod.py").unlink()
    assert poll.changes() == [tmp_path / "pkg" / "mod.py"]


def test_watchfiles_sees_a_python_file_change(tmp_path: Path) -> None:
    if importlib.util.find_spec("watchfiles") is None:
        message = "watchfiles is not installed (pip install -e '.[test]')"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    touch(tmp_path / "app.py", "a = 1\n")
    watch = WatchfilesWatch(tmp_path)
    try:
        changed: list[Path] = []
        deadline = time.monotonic() + TIMEOUT
        for attempt in range(1000):
            # Written again until seen: the watcher may start listening after the first write.
            touch(tmp_path / "app.py", f"a = {attempt + 2}\n")
            time.sleep(0.1)  # noqa: TID251 - the pace of a bounded poll, not a synchronisation
            changed = watch.changes()
            if changed or time.monotonic() > deadline:
                break
        assert changed == [tmp_path / "app.py"]
    finally:
        watch.close()


def test_app_directory_is_where_the_top_level_module_is_imported_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    touch(tmp_path / "project" / "single_module_app.py", "app = None\n")
    touch(tmp_path / "project" / "some_pkg_app" / "__init__.py", "")
    touch(tmp_path / "project" / "some_pkg_app" / "main.py", "app = None\n")
    monkeypatch.chdir(tmp_path / "project")
    monkeypatch.setattr(sys, "path", [str(tmp_path / "project"), *sys.path])
    project = (tmp_path / "project").resolve()
    assert app_directory("single_module_app:app") == project
    assert app_directory("some_pkg_app.main:app") == project
    with pytest.raises(FrameworkError, match="no module named 'not_there_at_all'"):
        app_directory("not_there_at_all:app")
