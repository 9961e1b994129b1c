"""Trying a request again (``Client(retries=N)``): which failures allow it, and the back-off.

This module owns the rule and the pauses: a failure to connect sent nothing, so any request
may go again; a connection that broke after sending may have delivered the request, so only
one safe to replay (``ClientRequest.replayable``) goes again; a certificate failure or a
proxy's refusal would only repeat. Pauses start at ``limits.CLIENT_RETRY_BACKOFF`` and double
up to ``limits.CLIENT_RETRY_BACKOFF_MAX``, with jitter, within the request's deadline. It knows
nothing of URLs or responses.
"""

from __future__ import annotations

import asyncio
import random

from .. import limits
from ..errors import (
    ClientError,
    ConnectError,
    ConnectTimeout,
    ProxyError,
    ReadError,
    TLSError,
    WriteError,
)
from .connection import ClientConnection
from .pool import ConnectionPool
from .request import ClientRequest, Timeout

__all__ = ["RETRIABLE", "send_again"]

#: The failures of ``ConnectionPool.send`` that ``send_again`` considers.
RETRIABLE = (ConnectError, ConnectTimeout, ReadError, WriteError)


async def send_again(
    pool: ConnectionPool,
    request: ClientRequest,
    phases: Timeout,
    deadline: float | None,
    failure: ClientError,
    retries: int,
) -> ClientConnection:
    """Send ``request`` again after ``failure``, backing off, up to ``retries`` times.

    Raises:
        ClientError: ``failure`` (or the last one) when it may not or can no longer be retried.
    """
    tries = 0
    while True:
        if isinstance(failure, TLSError | ProxyError):
            raise failure  # the same certificate or the same refusal again
        if tries >= retries or not (
            isinstance(failure, ConnectError | ConnectTimeout) or request.replayable
        ):
            raise failure
        delay = min(limits.CLIENT_RETRY_BACKOFF * 2**tries, limits.CLIENT_RETRY_BACKOFF_MAX)
        delay *= random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not a secret
        if deadline is not None and pool.loop.time() + delay >= deadline:
            raise failure  # no time left before the total timeout
        tries += 1
        await asyncio.sleep(delay)
        try:
            return await pool.send(request, phases, deadline)
        except RETRIABLE as exc:
            failure = exc
