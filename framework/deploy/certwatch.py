"""Certificate file watching: a renewal that only replaces the files is picked up.

Renewal tools (certbot, acme.sh, a Kubernetes secret mount) write new certificate and key files
and may not signal the server. ``CertificateWatcher`` looks at the files' status (modification
time, size, inode) every couple of seconds, a ``stat`` per file and nothing more, and reloads
through ``Server.reload_certificate`` (which checks the new files first and keeps the old
certificate when they fail) once the files have stopped changing for one interval: a tool that
writes the certificate and then the key is not caught halfway.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from ..server import Server

__all__ = ["WATCH_INTERVAL", "CertificateWatcher"]

log = logging.getLogger("framework")

#: Seconds between two looks at the certificate files.
WATCH_INTERVAL = 2.0

Stamp = tuple[tuple[int, int, int] | None, ...]


def _stamp(paths: list[Path]) -> Stamp:
    stamps: list[tuple[int, int, int] | None] = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            stamps.append(None)  # gone for a moment while it is replaced
        else:
            stamps.append((st.st_mtime_ns, st.st_size, st.st_ino))
    return tuple(stamps)


class CertificateWatcher:
    """Reloads ``server``'s certificates when their files change.

    Args:
        server: a started server with a ``CertificateStore``.
        interval: seconds between two looks at the files.
    """

    def __init__(self, server: Server, interval: float = WATCH_INTERVAL) -> None:
        if server.certificates is None:
            raise ValueError("CertificateWatcher needs a server with a CertificateStore")
        self.server = server
        self.interval = interval
        self._handle: asyncio.TimerHandle | None = None
        self._loaded = self._seen = _stamp(self.paths)

    @property
    def paths(self) -> list[Path]:
        """The files watched: the certificate, its key and the client CRL (when given)."""
        store = self.server.certificates
        assert store is not None
        paths = [store.certfile]
        for extra in (store.keyfile, store.client_crl):
            if extra is not None:
                paths.append(extra)
        return paths

    def start(self) -> None:
        """Look at the files every ``interval`` seconds, on the running loop."""
        log.info(
            "watching %s for changes (every %g s)",
            ", ".join(str(p) for p in self.paths),
            self.interval,
        )
        self._schedule()

    def stop(self) -> None:
        """Stop looking."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def reloaded(self) -> None:
        """The certificates were reloaded by someone else (SIGHUP): the files are current."""
        self._loaded = self._seen = _stamp(self.paths)

    def _schedule(self) -> None:
        self._handle = asyncio.get_running_loop().call_later(self.interval, self.check)

    def check(self) -> None:
        """One look: reload when the files changed and have been still since the last look."""
        try:
            now = _stamp(self.paths)
            settled = now == self._seen
            self._seen = now
            if settled and now != self._loaded and None not in now:
                self._loaded = now  # a refused set is not retried until the files change again
                try:
                    self.server.reload_certificate()
                except Exception:  # noqa: BLE001 - logged by the server; the old one stays
                    pass
        finally:
            self._schedule()
