"""Form bodies: ``data=`` as ``application/x-www-form-urlencoded``, with ``files=`` as
``multipart/form-data`` (RFC 7578).

This module owns encoding form fields and files into the bytes of a body and its
``Content-Type``. Files are read whole into memory (a body with a length can be replayed on a
redirect or a retry); for uploads too large for that, send ``content=`` an async iterator. It
knows nothing of requests or connections.
"""

from __future__ import annotations

import mimetypes
import os
import secrets
from collections.abc import Mapping, Sequence
from typing import IO, Any, TypeAlias
from urllib.parse import urlencode

__all__ = ["DataLike", "FilesLike", "encode_form"]

DataLike: TypeAlias = "Mapping[str, Any] | Sequence[tuple[str, Any]]"
FileContent: TypeAlias = "bytes | str | IO[bytes]"
FileValue: TypeAlias = (
    "FileContent | tuple[str | None, FileContent] | tuple[str | None, FileContent, str | None]"
)
FilesLike: TypeAlias = "Mapping[str, FileValue] | Sequence[tuple[str, FileValue]]"


def _items(fields: Any) -> list[tuple[str, Any]]:
    return list(fields.items() if isinstance(fields, Mapping) else fields)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _pairs(data: DataLike | None) -> list[tuple[str, str]]:
    """The fields, lists repeating the name, as ``params=`` does."""
    if data is None:
        return []
    if not isinstance(data, Mapping | Sequence) or isinstance(data, str | bytes):
        raise TypeError(
            f"data must be a mapping (form fields), not {type(data).__name__}; "
            "send raw bytes or text with content="
        )
    pairs = []
    for name, value in _items(data):
        for one in value if isinstance(value, list | tuple) else [value]:
            pairs.append((str(name), _text(one)))
    return pairs


def _quote(value: str) -> str:
    # RFC 7578 4.2 and the HTML standard: escape the quote and line breaks in names.
    return value.replace("\\", "\\\\").replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")


def _file(name: str, value: Any) -> tuple[str | None, bytes, str]:
    filename: str | None
    content_type: str | None = None
    if isinstance(value, tuple):
        if len(value) == 2:
            filename, content = value
        elif len(value) == 3:
            filename, content, content_type = value
        else:
            raise TypeError(f"files[{name!r}] must be (filename, content[, content type])")
    else:
        content = value
        raw = getattr(value, "name", None)
        filename = os.path.basename(raw) if isinstance(raw, str) else name
    if isinstance(content, str):
        data = content.encode("utf-8")
    elif isinstance(content, bytes | bytearray | memoryview):
        data = bytes(content)
    elif hasattr(content, "read"):
        data = content.read()
        if not isinstance(data, bytes):
            raise TypeError(f"files[{name!r}] must be opened in binary mode ('rb')")
    else:
        kind = type(content).__name__
        raise TypeError(f"files[{name!r}] must be bytes, str or a file opened 'rb', not {kind}")
    if content_type is None:
        guessed = mimetypes.guess_type(filename)[0] if filename else None
        content_type = guessed or "application/octet-stream"
    return filename, data, content_type


def encode_form(data: DataLike | None, files: FilesLike | None) -> tuple[bytes, bytes]:
    """The body and ``Content-Type`` for form fields ``data`` and uploads ``files``.

    Raises:
        TypeError: a field or a file is of a type that cannot be sent.
    """
    fields = _pairs(data)
    if not files:
        return urlencode(fields).encode("ascii"), b"application/x-www-form-urlencoded"
    boundary = secrets.token_hex(16)
    parts: list[bytes] = []
    for name, value in fields:
        head = f'--{boundary}\r\nContent-Disposition: form-data; name="{_quote(name)}"\r\n\r\n'
        parts.append(head.encode() + value.encode("utf-8") + b"\r\n")
    for name, value in _items(files):
        filename, content, content_type = _file(str(name), value)
        disposition = f'form-data; name="{_quote(str(name))}"'
        if filename is not None:
            disposition += f'; filename="{_quote(filename)}"'
        parts.append(
            f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
            f"Content-Type: {content_type}\r\n\r\n".encode()
            + content
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}".encode("ascii")
