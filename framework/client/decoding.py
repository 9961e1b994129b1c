"""Undoing what a response body was sent as: gzip/deflate (bounded), text, and lines.

This module owns turning body bytes into what the caller asks for: ``BodyDecoder`` undoes the
content codings with a cap on the decoded size (a decompression bomb stops at the cap, not in
memory), ``text_decoder`` decodes text incrementally in the response's charset, and
``LineSplitter`` cuts text into lines as ``str.splitlines`` would, refusing a line longer than
its bound. It knows nothing of connections or of the response object (``response.py``).
"""

from __future__ import annotations

import codecs
import zlib
from typing import Any

from ..errors import DecodingError

__all__ = ["BodyDecoder", "LineSplitter", "text_decoder"]


class BodyDecoder:
    """gzip and deflate, undone piece by piece, refusing output past ``max_size`` bytes."""

    __slots__ = ("_encodings", "_objects", "_fresh", "_left", "_max")

    def __init__(self, encodings: list[str], max_size: int) -> None:
        # Content-Encoding lists codings in the order applied; undo them in reverse.
        self._encodings = encodings[::-1]
        self._objects = [self._new(e) for e in self._encodings]
        self._fresh = [True] * len(encodings)
        self._left = [max_size] * len(encodings)
        self._max = max_size

    @staticmethod
    def _new(encoding: str) -> Any:
        # 47 = 32 + 15: a gzip or a zlib header, detected.
        return zlib.decompressobj(47 if encoding in ("gzip", "x-gzip") else 15)

    def decode(self, data: bytes) -> bytes:
        for i, encoding in enumerate(self._encodings):
            data = self._run(i, encoding, data)
        return data

    def _count(self, i: int, size: int) -> None:
        self._left[i] -= size
        if self._left[i] < 0:
            raise DecodingError(
                f"the decoded response body is larger than {self._max} bytes "
                "(max_decoded_bytes); client.stream() with aiter_raw() reads it as sent"
            )

    def _run(self, i: int, encoding: str, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            obj = self._objects[i]
            try:
                # Never ask for more than the cap allows: a bomb stops here, not in memory.
                piece = obj.decompress(data, self._left[i] + 1)
            except zlib.error as exc:
                if encoding == "deflate" and self._fresh[i]:
                    # Some servers send raw deflate, without the zlib header RFC 9110 asks for.
                    self._fresh[i] = False
                    self._objects[i] = zlib.decompressobj(-15)
                    continue
                raise DecodingError(f"the {encoding} response body is corrupt: {exc}") from exc
            self._fresh[i] = False
            self._count(i, len(piece))
            out.append(piece)
            if obj.unconsumed_tail:
                data = obj.unconsumed_tail
            elif obj.eof and obj.unused_data and encoding in ("gzip", "x-gzip"):
                data = obj.unused_data  # another gzip member follows
                self._objects[i] = self._new(encoding)
            else:
                break
        return b"".join(out)

    def flush(self) -> bytes:
        data = b""
        for i, encoding in enumerate(self._encodings):
            if data:
                data = self._run(i, encoding, data)
            tail = self._objects[i].flush()
            if tail:
                self._count(i, len(tail))
                data += tail
        return data


def text_decoder(charset: str | None) -> codecs.IncrementalDecoder:
    """An incremental decoder for ``charset`` (UTF-8 when unknown), replacing bad bytes."""
    try:
        factory = codecs.getincrementaldecoder(charset or "utf-8")
    except LookupError:
        factory = codecs.getincrementaldecoder("utf-8")
    return factory(errors="replace")


class LineSplitter:
    """Cuts text arriving in pieces into lines (``\\n``, ``\\r\\n`` or ``\\r``, dropped).

    Args:
        max_line: the longest line accepted, in characters; past it ``DecodingError``.
    """

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_line: int) -> None:
        self._buffer = ""
        self._max = max_line

    def feed(self, text: str) -> list[str]:
        """The lines completed by ``text``."""
        text = self._buffer + text
        # A trailing "\r" may be the first half of "\r\n": keep it until the next piece.
        keep_cr = text.endswith("\r")
        if keep_cr:
            text = text[:-1]
        lines = text.splitlines(keepends=True)
        self._buffer = ""
        if lines and not lines[-1].endswith(("\n", "\r")):
            self._buffer = lines.pop()
        if keep_cr:
            self._buffer += "\r"
        if len(self._buffer) > self._max:
            raise DecodingError(f"a line of the response body is longer than {self._max} bytes")
        return [line.rstrip("\r\n") for line in lines]

    def flush(self) -> list[str]:
        """The last line, when the text did not end with a line break."""
        rest, self._buffer = self._buffer, ""
        return [line.rstrip("\r\n") for line in rest.splitlines()] if rest else []
