"""``serve --reload``: restart the server process when the app's Python files change.

For development. This process runs no server: it starts ``framework serve`` (the same
arguments, without ``--reload``) as a child in its own process group, watches the ``.py``
files under the app's directory, and on a change stops the child gracefully (SIGTERM, so it
drains) and starts a new one. It uses ``watchfiles`` when that is installed, else a stat poll
of the files. A child that fails (a syntax error, say) is restarted at the next change.
SIGINT/SIGTERM stop the child and then this process (with the child's exit status); SIGHUP is
passed on (certificate reload).
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from ..errors import FrameworkError

__all__ = ["POLL_INTERVAL", "app_directory", "run_with_reload"]

#: Seconds between two looks at the files (the stat poll) and at the child.
POLL_INTERVAL = 0.5
#: Most files the stat poll looks at: a directory that big is not an app's.
MAX_FILES = 20_000
#: How long a stopped child may drain before it is killed (its own --graceful-timeout bounds
#: it first; this is for a child that does not answer SIGTERM at all).
STOP_TIMEOUT = 30.0
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "build", "dist"}


def app_directory(spec: str) -> Path:
    """The directory the app's top-level module or package is imported from.

    Found without importing anything: for ``myproject.main:app`` run from the project, the
    project's directory; every ``.py`` file under it is watched, as uvicorn does.

    Raises:
        FrameworkError: the module cannot be found.
    """
    top = spec.partition(":")[0].split(".")[0]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.util.find_spec(top) if top else None
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise FrameworkError(
            f"no module named {top!r} (from {spec!r}); run from the directory that holds it, "
            "or check the spelling"
        )
    if found.submodule_search_locations:  # a package: the directory above it
        return Path(next(iter(found.submodule_search_locations))).resolve().parent
    if found.origin is None:
        raise FrameworkError(f"{top!r} is not a module in a directory; --reload cannot watch it")
    return Path(found.origin).resolve().parent


def _python_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        # Hidden directories, caches and virtual environments are not the app's code.
        dirnames[:] = [
            d
            for d in dirnames
            if not d.startswith(".")
            and d not in _SKIP_DIRS
            and not os.path.exists(os.path.join(dirpath, d, "pyvenv.cfg"))
        ]
        for name in filenames:
            if name.endswith(".py"):
                yield Path(dirpath, name)


class StatPoll:
    """Finds changed ``.py`` files by comparing their status between two looks."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._seen = self._scan()

    def _scan(self) -> dict[Path, tuple[int, int]]:
        seen: dict[Path, tuple[int, int]] = {}
        for path in _python_files(self.root):
            try:
                st = path.stat()
            except OSError:
                continue
            seen[path] = (st.st_mtime_ns, st.st_size)
            if len(seen) >= MAX_FILES:
                break
        return seen

    def changes(self) -> list[Path]:
        """The files added, changed or removed since the last call."""
        now = self._scan()
        changed = [p for p in now.keys() | self._seen.keys() if now.get(p) != self._seen.get(p)]
        self._seen = now
        return sorted(changed)


class WatchfilesWatch:
    """The same, from the operating system's notifications through ``watchfiles``."""

    def __init__(self, root: Path) -> None:
        import watchfiles  # type: ignore[import-not-found, unused-ignore]

        self.root = root
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changed: set[Path] = set()
        watch: Callable[..., Iterator[set[tuple[Any, str]]]] = watchfiles.watch
        python_only = watchfiles.PythonFilter()

        def run() -> None:
            for batch in watch(root, watch_filter=python_only, stop_event=self._stop):
                with self._lock:
                    self._changed.update(Path(path) for _, path in batch)

        self._thread = threading.Thread(target=run, name="reload-watch", daemon=True)
        self._thread.start()

    def changes(self) -> list[Path]:
        """The files changed since the last call."""
        with self._lock:
            changed, self._changed = sorted(self._changed), set()
        return changed

    def close(self) -> None:
        """Stop watching."""
        self._stop.set()


def _watcher(root: Path) -> StatPoll | WatchfilesWatch:
    if importlib.util.find_spec("watchfiles") is not None:
        return WatchfilesWatch(root)
    return StatPoll(root)


class _Reloader:
    def __init__(self, command: list[str], root: Path, out: TextIO) -> None:
        self.command = command
        self.root = root
        self.out = out
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping: int | None = None  # the signal that asked this process to stop
        self.wake = threading.Event()

    def say(self, line: str) -> None:
        print(f"framework: {line}", file=self.out, flush=True)

    def start(self) -> None:
        # Its own process group: a terminal's Ctrl-C reaches this process only, which then
        # stops the child once (a second SIGINT would stop it at once, undrained).
        self.child = subprocess.Popen(self.command, process_group=0)
        self.say(f"reloader: started server process {self.child.pid}")

    def stop_child(self) -> int | None:
        child = self.child
        if child is None:
            return None
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.say(f"reloader: server process {child.pid} did not stop; killing it")
                child.kill()
                child.wait(STOP_TIMEOUT)
        self.child = None
        return child.returncode

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            if self.child is not None and self.child.poll() is None:
                self.child.send_signal(signal.SIGHUP)
            return
        self.stopping = signum
        self.wake.set()

    def run(self) -> int:
        watcher = _watcher(self.root)
        kind = "watchfiles" if isinstance(watcher, WatchfilesWatch) else "a stat poll"
        self.say(f"reloader: watching *.py under {self.root} ({kind})")
        self.start()
        reported_exit = False
        try:
            while True:  # until a signal (development use); each turn waits POLL_INTERVAL
                self.wake.wait(POLL_INTERVAL)
                if self.stopping is not None:
                    status = self.stop_child()
                    return 0 if status is None or status < 0 else status
                child = self.child
                if child is not None and child.poll() is not None and not reported_exit:
                    reported_exit = True
                    self.say(
                        f"reloader: the server exited with status {child.returncode}; "
                        "waiting for a change to restart it"
                    )
                changed = watcher.changes()
                if changed:
                    shown = ", ".join(str(p.relative_to(self.root)) for p in changed[:3])
                    more = f" and {len(changed) - 3} more" if len(changed) > 3 else ""
                    self.say(f"reloader: {shown}{more} changed; restarting")
                    self.stop_child()
                    self.start()
                    reported_exit = False
        finally:
            if isinstance(watcher, WatchfilesWatch):
                watcher.close()
            self.stop_child()


def run_with_reload(serve_argv: Sequence[str], root: Path, *, out: TextIO = sys.stderr) -> int:
    """Run ``framework serve SERVE_ARGV`` in a child, restarting it when ``root``'s code changes.

    Returns the exit status once SIGINT or SIGTERM stopped it (the child's: 0 when it drained).
    """
    command = [sys.executable, "-m", "framework", "serve", *serve_argv]
    reloader = _Reloader(command, root, out)
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {s: signal.signal(s, reloader.on_signal) for s in handled}
    try:
        return reloader.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
