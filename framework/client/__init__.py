"""The client role: ``Client``, ``SyncClient`` and the response they return.

``client`` holds the ``Client`` (base URL, defaults, redirects); ``retry`` when and how a
request is tried again; ``shortcuts`` the per-request options and the ``get``/``post``/...
methods; ``request`` makes URLs, headers and bodies into a ``ClientRequest`` (forms and
uploads from ``multipart``, credentials from ``auth``, cookies from ``cookies``' jar);
``pool`` owns each exchange, from taking a
connection to the response's head, and takes the connection back; ``connector`` opens
connections (TCP, then TLS; through a proxy as ``proxy`` says); ``connection`` is one
HTTP/1.1 connection; ``response`` reads the body, which ``decoding`` decodes; ``sync`` runs
the client for scripts without async. Users import these names from ``framework``.
"""

from __future__ import annotations

from .auth import BasicAuth, BearerAuth, PendingRequest
from .client import Client
from .connector import system_context
from .cookies import Cookies
from .request import ClientRequest, Timeout
from .response import ClientResponse
from .sync import SyncClient, delete, get, head, options, patch, post, put, request

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "Client",
    "ClientRequest",
    "ClientResponse",
    "Cookies",
    "PendingRequest",
    "SyncClient",
    "Timeout",
    "delete",
    "get",
    "head",
    "options",
    "patch",
    "post",
    "put",
    "request",
    "system_context",
]
