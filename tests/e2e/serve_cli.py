"""``python -m framework serve`` run as a user runs it, for the end-to-end tests.

A subprocess with its stderr read line by line as it arrives, so a test can wait for a line
(the start-up line, a log line after a request) instead of sleeping.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT = 30.0
LOG_TIMEOUT = 10.0
SERVING = re.compile(r"framework: serving on https://localhost:(\d+)/")


def environment(home: Path, *extra_path: Path) -> dict[str, str]:
    """The environment for the CLI: ``FRAMEWORK_HOME`` at ``home``, the repository importable."""
    env = dict(os.environ)
    env["FRAMEWORK_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *map(str, extra_path)])
    env.pop("PYTHONWARNINGS", None)
    return env


@dataclass
class Served:
    """A ``framework serve`` subprocess and the lines of its stderr, as they arrive."""

    process: subprocess.Popen[str]
    port: int = 0
    lines: queue.Queue[str | None] = field(default_factory=queue.Queue)
    seen: list[str] = field(default_factory=list)

    def mark(self) -> int:
        """Where the lines read so far end; ``wait_for(..., after=mark)`` looks past it."""
        self.drain()
        return len(self.seen)

    def drain(self) -> None:
        """Move the lines that arrived so far into ``seen``."""
        for _ in range(100_000):
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                self.lines.put(None)  # stays at the end for the next reader
                return
            self.seen.append(line)

    def wait_for(
        self, pattern: re.Pattern[str], *, after: int = 0, timeout: float = LOG_TIMEOUT
    ) -> re.Match[str]:
        """The first line past ``after`` matching ``pattern``, waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        for index in range(after, after + 100_000):
            while index >= len(self.seen):
                left = deadline - time.monotonic()
                try:
                    line = self.lines.get(timeout=max(left, 0.0))
                except queue.Empty:
                    line = None
                if line is None:
                    raise AssertionError(
                        f"no line matching {pattern.pattern!r}; stderr: {self.seen[after:]!r}"
                    )
                self.seen.append(line)
            if found := pattern.search(self.seen[index]):
                return found
        raise AssertionError("too many lines")

    def stop(self) -> int:
        """SIGTERM, as a process manager stops it; the exit status."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=STARTUP_TIMEOUT)

    def rest(self) -> list[str]:
        """Every stderr line, once the process has exited."""
        for _ in range(100_000):
            line = self.lines.get(timeout=STARTUP_TIMEOUT)
            if line is None:
                return self.seen
            self.seen.append(line)
        raise AssertionError("stderr never ended")


@contextmanager
def serve_cli(
    args: list[str], *, env: dict[str, str], cwd: Path, python: str = sys.executable
) -> Iterator[Served]:
    """Run ``python -m framework serve ARGS`` until the block ends (then SIGTERM, or kill)."""
    process = subprocess.Popen(
        [python, "-m", "framework", "serve", *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process)

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            served.lines.put(line.rstrip("\n"))
        served.lines.put(None)

    reader = threading.Thread(target=pump, name="serve-stderr", daemon=True)
    reader.start()
    try:
        yield served
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=STARTUP_TIMEOUT)
        reader.join(timeout=STARTUP_TIMEOUT)
        assert process.stderr is not None
        process.stderr.close()
