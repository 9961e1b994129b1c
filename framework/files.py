"""What a file response needs beyond its bytes: validators, conditional requests, byte ranges.

Pure functions over header values and a file's ``stat``: the ``ETag`` and ``Last-Modified`` of
a file, the answer to ``If-Match``/``If-None-Match``/``If-Modified-Since``/``If-Unmodified-Since``
(RFC 9110 13.2.2), the ranges a ``Range`` header asks for (RFC 9110 14.2), and readers that
stream one range or a ``multipart/byteranges`` body from the file in pieces. Nothing here
knows of requests, responses or routes; ``FileResponse`` and ``StaticFiles`` use it.
"""

from __future__ import annotations

import asyncio
import mimetypes
import os
import re
import secrets
from collections.abc import AsyncIterator, Sequence
from datetime import UTC
from email.utils import formatdate, parsedate_to_datetime

from . import limits

__all__ = [
    "ByteRange",
    "Unsatisfiable",
    "etag_of",
    "http_date",
    "media_type",
    "if_range_holds",
    "multipart_body",
    "parse_range",
    "precondition",
    "preferred_encoding",
    "read_range",
]

#: A byte range ``(first, last)``, both inclusive, as in ``Content-Range``.
ByteRange = tuple[int, int]


class Unsatisfiable(Exception):
    """No range of a valid ``Range`` header overlaps the file: the answer is 416."""


# A name like "x.css.gz" is, for mimetypes, CSS with a gzip encoding; sent as a file, it is
# an archive: what the bytes are, not what they unpack to (nginx sends application/gzip).
_ENCODED_TYPES = {
    "gzip": "application/gzip",
    "br": "application/x-brotli",
    "bzip2": "application/x-bzip2",
    "xz": "application/x-xz",
    "compress": "application/x-compress",
}


def media_type(name: str) -> str:
    """The ``Content-Type`` for a file called ``name``, by its extension.

    Text types get ``charset=utf-8``; a compressed file (``x.css.gz``) is its archive type;
    an unknown extension is ``application/octet-stream``.
    """
    guessed, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return _ENCODED_TYPES.get(encoding, "application/octet-stream")
    if guessed is None:
        return "application/octet-stream"
    return guessed + "; charset=utf-8" if guessed.startswith("text/") else guessed


def etag_of(stat: os.stat_result) -> str:
    """A strong ``ETag`` for a file: its modification time (ns) and size, as nginx makes it."""
    return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'


def http_date(timestamp: float) -> str:
    """``timestamp`` as an HTTP date (``Sun, 06 Nov 1994 08:49:37 GMT``)."""
    return formatdate(timestamp, usegmt=True)


def _parse_date(value: str) -> float | None:
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        # asctime and "-0000" dates come without a zone; HTTP dates are GMT (RFC 9110 5.6.7).
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _tags(value: str) -> list[str]:
    # Entity tags may hold commas inside their quotes; take them whole.
    return re.findall(r'(?:W/)?"[^"]*"|\*', value)


def _weak_match(tags: list[str], etag: str) -> bool:
    opaque = etag.removeprefix("W/")
    return any(tag == "*" or tag.removeprefix("W/") == opaque for tag in tags)


def _strong_match(tags: list[str], etag: str) -> bool:
    if etag.startswith("W/"):
        return "*" in tags
    return any(tag == "*" or tag == etag for tag in tags)


def precondition(
    method: str,
    get: Sequence[str | None],
    etag: str,
    mtime: float,
) -> int | None:
    """The status the preconditions of a request call for, or ``None`` to answer normally.

    ``get`` holds the request's ``If-Match``, ``If-Unmodified-Since``, ``If-None-Match`` and
    ``If-Modified-Since`` values (``None`` when absent), evaluated in the order of RFC 9110
    13.2.2: 412 when ``If-Match`` or ``If-Unmodified-Since`` fails, 304 (for ``GET`` and
    ``HEAD``; 412 otherwise) when ``If-None-Match`` matches or, without it, the file has not
    changed since ``If-Modified-Since``. Dates that do not parse are ignored, as RFC 9110 says.
    """
    if_match, if_unmodified, if_none_match, if_modified = get
    seconds = int(mtime)  # HTTP dates have whole seconds
    if if_match is not None:
        if not _strong_match(_tags(if_match), etag):
            return 412
    elif if_unmodified is not None:
        since = _parse_date(if_unmodified)
        if since is not None and seconds > since:
            return 412
    safe = method in ("GET", "HEAD")
    if if_none_match is not None:
        if _weak_match(_tags(if_none_match), etag):
            return 304 if safe else 412
    elif if_modified is not None and safe:
        since = _parse_date(if_modified)
        if since is not None and seconds <= since:
            return 304
    return None


def if_range_holds(value: str, etag: str, mtime: float) -> bool:
    """True when ``If-Range: value`` lets the ``Range`` apply: the representation is unchanged.

    An entity tag must match strongly; a date must equal ``Last-Modified`` exactly (RFC 9110
    13.1.5).
    """
    value = value.strip()
    if value.startswith(('"', "W/")):
        return not etag.startswith("W/") and value == etag
    since = _parse_date(value)
    return since is not None and int(mtime) == since


_RANGE_SPEC = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*")
# Digits past this many are no file offset anywhere; reading them as such is pointless, and
# int() refuses strings past 4300 digits.
_MAX_DIGITS = 19


def _number(digits: str) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10**_MAX_DIGITS


def parse_range(
    value: str, size: int, max_ranges: int = limits.MAX_RANGES
) -> list[ByteRange] | None:
    """The byte ranges ``Range: value`` asks of a file of ``size`` bytes, sorted and merged.

    ``None`` means the header is to be ignored and the whole file sent (RFC 9110 14.2): another
    unit than ``bytes``, a syntax error, or more than ``max_ranges`` ranges after overlapping
    and adjacent ones are merged (Apache's answer to CVE-2011-3192). Ranges past the end are
    cut at it; ranges starting past it are dropped.

    Raises:
        Unsatisfiable: the header is valid but none of its ranges overlaps the file (416).
    """
    unit, sep, spec = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    ranges: list[ByteRange] = []
    count = 0
    for item in spec.split(","):
        if not item.strip():
            continue  # empty list elements are allowed (RFC 9110 5.6.1)
        count += 1
        if count > max_ranges * 4:
            return None  # no need to read further: this many is refused below anyway
        match = _RANGE_SPEC.fullmatch(item)
        if match is None:
            return None
        first, last = match.groups()
        if first:
            start = _number(first)
            end = _number(last) if last else size - 1
            if last and end < start:
                return None  # "5-3" is invalid: the whole header is ignored
            if start >= size:
                continue
            ranges.append((start, min(end, size - 1)))
        elif last:
            suffix = _number(last)
            if suffix == 0 or size == 0:
                continue
            ranges.append((max(size - suffix, 0), size - 1))
        else:
            return None  # "-" alone
    if count == 0:
        return None
    if not ranges:
        raise Unsatisfiable(value)
    ranges.sort()
    merged = [ranges[0]]
    for start, end in ranges[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end + 1:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    if len(merged) > max_ranges:
        return None
    return merged


async def read_range(
    path: str | os.PathLike[str], start: int, end: int, chunk: int = limits.FILE_CHUNK_BYTES
) -> AsyncIterator[bytes]:
    """Yield bytes ``start`` to ``end`` (inclusive) of the file, in pieces, read in a thread.

    Never more than ``end - start + 1`` bytes, whatever the file holds now.
    """
    # Reads happen in a thread so a slow disk never stalls the event loop.
    with open(path, "rb") as file:  # noqa: ASYNC230 (reads below go to a thread)
        if start:
            await asyncio.to_thread(file.seek, start)
        left = end - start + 1
        while left > 0:
            data = await asyncio.to_thread(file.read, min(chunk, left))
            if not data:
                return  # the file shrank since it was measured
            left -= len(data)
            yield data


def _part_head(boundary: str, media_type: str, byte_range: ByteRange, size: int) -> bytes:
    start, end = byte_range
    return (
        f"\r\n--{boundary}\r\ncontent-type: {media_type}\r\n"
        f"content-range: bytes {start}-{end}/{size}\r\n\r\n"
    ).encode("latin-1")


def multipart_body(
    path: str | os.PathLike[str], ranges: list[ByteRange], size: int, media_type: str
) -> tuple[str, int, AsyncIterator[bytes]]:
    """A ``multipart/byteranges`` body of ``ranges`` (RFC 9110 14.6): boundary, length, bytes."""
    boundary = secrets.token_hex(16)
    heads = [_part_head(boundary, media_type, byte_range, size) for byte_range in ranges]
    tail = f"\r\n--{boundary}--\r\n".encode("latin-1")
    length = sum(len(h) for h in heads) + sum(e - s + 1 for s, e in ranges) + len(tail)

    async def parts() -> AsyncIterator[bytes]:
        for head, (start, end) in zip(heads, ranges, strict=True):
            yield head
            async for data in read_range(path, start, end):
                yield data
        yield tail

    return boundary, length, parts()


def preferred_encoding(accept_encoding: str | None, offered: Sequence[str]) -> str | None:
    """The coding of ``offered`` (in the server's order of preference) the client takes best.

    Reads ``Accept-Encoding`` with its q-values (RFC 9110 12.5.3): a coding with ``q=0`` is
    refused, ``*`` stands for any coding not named; ties go to the earlier of ``offered``.
    ``None``: send the identity coding.
    """
    if not accept_encoding:
        return None
    weights: dict[str, float] = {}
    for item in accept_encoding.split(",")[:64]:
        name, _, params = item.partition(";")
        name = name.strip().lower()
        if not name:
            continue
        q = 1.0
        for param in params.split(";"):
            key, _, val = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = min(max(float(val.strip()), 0.0), 1.0)
                except ValueError:
                    q = 0.0
        weights[name] = q
    best, best_q = None, 0.0
    for coding in offered:
        q = weights.get(coding, weights.get("*", 0.0))
        if q > best_q:
            best, best_q = coding, q
    return best
