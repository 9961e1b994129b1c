"""The process model: how a server is run.

``run`` runs one server process: the event loop, the certificates, the signals that drain it.
Beside it: ``sockets`` (where to listen: addresses, Unix sockets, inherited descriptors,
systemd socket activation), ``systemd`` (readiness notifications), ``worker`` (what a serving
process reports) and ``supervisor`` (``serve --workers N``).
"""

from __future__ import annotations

from .run import ListenOptions, ProcessEvents, StartupFailed, new_event_loop, serve, start_server

__all__ = [
    "ListenOptions",
    "ProcessEvents",
    "StartupFailed",
    "new_event_loop",
    "serve",
    "start_server",
]
