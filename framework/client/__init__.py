"""The client role: ``Client`` and the response it returns.

``client`` holds the ``Client`` (base URL, defaults, redirects, shortcuts); ``request`` makes
URLs, headers and bodies into a ``ClientRequest``; ``pool`` owns each exchange, from taking a
connection to the response's head, and takes the connection back; ``connector`` opens
connections (TCP, then TLS); ``connection`` is one HTTP/1.1 connection; ``response`` reads and
decodes the body. Users import ``Client``, ``ClientResponse`` and ``Timeout`` from
``framework``.
"""

from __future__ import annotations

from .client import Client
from .connector import system_context
from .request import Timeout
from .response import ClientResponse

__all__ = ["Client", "ClientResponse", "Timeout", "system_context"]
