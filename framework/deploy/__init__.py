"""The process model: how a server is run.

``run`` runs one server process: the event loop, the certificates, the signals that drain it.
Worker supervision and systemd readiness and socket activation will live beside it here.
"""

from __future__ import annotations

from .run import ListenOptions, new_event_loop, serve, start_server

__all__ = ["ListenOptions", "new_event_loop", "serve", "start_server"]
