"""The client role: ``Client`` and the response it returns.

``client`` holds the ``Client``; ``pool`` shares connections between requests and opens them;
``connection`` is one HTTP/1.1 connection; ``response`` reads and decodes the body.
"""

from __future__ import annotations

from .client import Client, ClientResponse, Timeout, system_context

__all__ = ["Client", "ClientResponse", "Timeout", "system_context"]
