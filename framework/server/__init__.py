"""The server role: HTTPS connections from the listening socket to the handler and back.

``listener`` has the ``Server`` (bind, accept, reload, drain), ``protocol`` the per-connection
``ServerProtocol``, ``respond`` the one response writer, ``timeouts`` the per-connection phases
and deadlines, ``config`` the ``ServerConfig``. The server serves any ``Handler``; routing and
applications live above this package.
"""

from __future__ import annotations

from ..messages import Handler, Hook
from .config import ServerConfig
from .listener import Server
from .protocol import ServerContext, ServerProtocol

__all__ = ["Handler", "Hook", "Server", "ServerConfig", "ServerContext", "ServerProtocol"]
