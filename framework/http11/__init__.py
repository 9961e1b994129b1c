"""HTTP/1.1 without I/O: the driver both roles share and the events it speaks in.

h11 defines HTTP/1.1 here, and this package is the only part of the framework that imports it:
``driver`` wraps h11 and translates its events into ours (``events``), ``checks`` holds the
checks of received heads that h11 leaves out, and ``plain`` the framing of the plain messages
written without h11. Above this package, roles see only these names.
"""

from __future__ import annotations

import h11

from .convert import Prepared, check, prepare
from .driver import NEED_DATA, PAUSED, Driver, Role, State
from .events import (
    ConnectionClosed,
    Data,
    EndOfMessage,
    Event,
    HeaderList,
    InformationalResponse,
    Request,
    Response,
)

__all__ = [
    "CLOSED",
    "DONE",
    "ERROR",
    "IDLE",
    "MUST_CLOSE",
    "NEED_DATA",
    "PAUSED",
    "SEND_BODY",
    "SEND_RESPONSE",
    "SWITCHED_PROTOCOL",
    "ConnectionClosed",
    "Data",
    "Driver",
    "EndOfMessage",
    "Event",
    "HeaderList",
    "InformationalResponse",
    "Prepared",
    "Request",
    "Response",
    "Role",
    "State",
    "check",
    "prepare",
]

# The states of one side in the message cycle, as Driver.our_state and their_state give them
# (opaque values: compare them with ``is``).
IDLE: State = h11.IDLE
SEND_RESPONSE: State = h11.SEND_RESPONSE
SEND_BODY: State = h11.SEND_BODY
DONE: State = h11.DONE
MUST_CLOSE: State = h11.MUST_CLOSE
CLOSED: State = h11.CLOSED
ERROR: State = h11.ERROR
SWITCHED_PROTOCOL: State = h11.SWITCHED_PROTOCOL
