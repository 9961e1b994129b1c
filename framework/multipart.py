"""A streaming ``multipart/form-data`` parser (RFC 7578 over RFC 2046), sans I/O.

Bytes go in with ``feed`` in pieces of any size; events come out: ``PartStart`` with the
part's headers, ``PartData`` pieces, ``PartEnd``, and ``Done`` after the closing delimiter.
Memory is bounded whatever the input: body bytes are handed on as soon as they cannot be the
start of a delimiter, and a part's head is refused past a limit. Malformed input raises
``MultipartError``; nothing else is raised.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import limits

__all__ = [
    "Done",
    "Event",
    "MultipartError",
    "MultipartParser",
    "PartData",
    "PartEnd",
    "PartStart",
    "boundary_of",
    "parse_options_header",
]


class MultipartError(ValueError):
    """The body is not well-formed ``multipart/form-data``."""


@dataclass(frozen=True)
class PartStart:
    """A part begins; ``headers`` are its (lowercase name, value) pairs."""

    headers: list[tuple[str, str]]


@dataclass(frozen=True)
class PartData:
    """A piece of the current part's body."""

    data: bytes


@dataclass(frozen=True)
class PartEnd:
    """The current part is complete."""


@dataclass(frozen=True)
class Done:
    """The closing delimiter was read; anything after it (the epilogue) is ignored."""


Event = PartStart | PartData | PartEnd | Done

# RFC 2046 5.1.1: 1 to 70 characters from bchars, not ending in a space.
_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
_PARAM = re.compile(
    r';\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.DOTALL
)


def parse_options_header(value: str) -> tuple[str, dict[str, str]]:
    """``'form-data; name="a"'`` as ``("form-data", {"name": "a"})``; names lowercased.

    Quoted values lose their quotes and backslash escapes; a parameter given twice keeps its
    first value.
    """
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM.finditer(";" + rest):
        name, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1], flags=re.DOTALL)
        params.setdefault(name, raw)
    return head.strip().lower(), params


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` content type.

    Raises:
        MultipartError: no boundary, or one RFC 2046 does not allow.
    """
    _, params = parse_options_header(content_type)
    boundary = params.get("boundary")
    if boundary is None:
        raise MultipartError("multipart/form-data without a boundary parameter")
    if not _BOUNDARY.match(boundary):
        raise MultipartError(f"invalid multipart boundary {boundary[:80]!r}")
    return boundary.encode("ascii")


_PREAMBLE, _AFTER_DELIMITER, _HEAD, _BODY, _DONE = range(5)


class MultipartParser:
    """Turns a ``multipart/form-data`` body, fed in pieces, into events.

    Args:
        boundary: from ``boundary_of(content_type)``.
        max_head_bytes: the largest head of one part; ``MultipartError`` above it.
    """

    def __init__(
        self, boundary: bytes, *, max_head_bytes: int = limits.FORM_MAX_PART_HEAD_BYTES
    ) -> None:
        # The body is read as if it began with CRLF, so the first delimiter looks like the
        # others ("\r\n--boundary"), and a preamble before it is skipped.
        self._delimiter = b"\r\n--" + boundary
        self._buffer = bytearray(b"\r\n")
        self._state = _PREAMBLE
        self._max_head = max_head_bytes
        self._pos = 0

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``, the next bytes of the body; the events it completes.

        Raises:
            MultipartError: the body is malformed.
        """
        if self._state == _DONE:
            return []
        self._buffer += data
        events: list[Event] = []
        # Parsing moves an offset through the buffer; what it passed is dropped once, at
        # the end, so many small parts in one piece cost no repeated copying.
        self._pos = 0
        while self._step(events):
            pass
        del self._buffer[: self._pos]
        return events

    def close(self) -> None:
        """Say the body has ended.

        Raises:
            MultipartError: it ended before the closing delimiter.
        """
        if self._state != _DONE:
            raise MultipartError("multipart body ended before its closing boundary")

    def _step(self, events: list[Event]) -> bool:
        buffer, delimiter, pos = self._buffer, self._delimiter, self._pos
        if self._state == _PREAMBLE:
            at = buffer.find(delimiter, pos)
            if at < 0:
                # Keep only what could be the start of the delimiter.
                self._pos = max(pos, len(buffer) - len(delimiter) + 1)
                return False
            self._pos = at + len(delimiter)
            self._state = _AFTER_DELIMITER
            return True
        if self._state == _AFTER_DELIMITER:
            # "--" closes the body; otherwise optional whitespace (RFC 2046 transport
            # padding) then CRLF, and a part's head follows.
            if len(buffer) - pos < 2:
                return False
            if buffer[pos : pos + 2] == b"--":
                self._state = _DONE
                self._pos = len(buffer)
                events.append(Done())
                return False
            end = buffer.find(b"\r\n", pos)
            if end < 0:
                pending = bytes(buffer[pos:])
                if len(pending) > 256 or pending.rstrip(b"\r").strip(b" \t"):
                    raise MultipartError("garbage after a multipart boundary")
                return False
            if buffer[pos:end].strip(b" \t"):
                raise MultipartError("garbage after a multipart boundary")
            self._pos = end + 2
            self._state = _HEAD
            return True
        if self._state == _HEAD:
            if buffer[pos : pos + 2] == b"\r\n":
                end, skip = pos, 2  # a part with no headers at all
            else:
                end, skip = buffer.find(b"\r\n\r\n", pos, pos + self._max_head + 4), 4
            if end < 0:
                if len(buffer) - pos > self._max_head:
                    raise MultipartError(f"a multipart part head is over {self._max_head} bytes")
                return False
            head = bytes(buffer[pos:end])
            self._pos = end + skip
            events.append(PartStart(_parse_head(head)))
            self._state = _BODY
            return True
        if self._state == _BODY:
            at = buffer.find(delimiter, pos)
            if at < 0:
                # Everything but a tail that could begin the delimiter is body.
                safe = len(buffer) - len(delimiter) + 1
                if safe > pos:
                    with memoryview(buffer) as view:  # one copy, not a slice and a copy
                        events.append(PartData(bytes(view[pos:safe])))
                    self._pos = safe
                return False
            if at > pos:
                with memoryview(buffer) as view:
                    events.append(PartData(bytes(view[pos:at])))
            self._pos = at + len(delimiter)
            events.append(PartEnd())
            self._state = _AFTER_DELIMITER
            return True
        return False


def _parse_head(head: bytes) -> list[tuple[str, str]]:
    headers: list[tuple[str, str]] = []
    if not head:
        return headers
    for line in head.split(b"\r\n"):
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or b"\n" in line or b"\r" in line:
            raise MultipartError(f"malformed multipart part header {line[:80]!r}")
        # Browsers send UTF-8 file names raw in the header (RFC 7578 4.2 allows it).
        headers.append(
            (name.decode("latin-1").lower(), value.strip(b" \t").decode("utf-8", "replace"))
        )
    return headers
