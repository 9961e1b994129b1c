"""Forms: ``FormData`` and ``UploadFile``, read from urlencoded or multipart bodies.

``parse_form`` reads a body as it streams in. A urlencoded body is small by nature and read
whole (within the size limit); a multipart body goes through ``multipart.MultipartParser``
piece by piece, text fields into memory (each within ``FORM_MAX_PART_BYTES``), files into
``UploadFile`` s that move to a temporary file past ``FORM_SPOOL_BYTES``. Every count and size
is bounded by ``limits.py``; past one the answer is ``413`` (size) or ``400`` (count, syntax).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO
from urllib.parse import parse_qsl

from . import limits
from .errors import HTTPError
from .multipart import (
    Done,
    MultipartError,
    MultipartParser,
    PartData,
    PartEnd,
    PartStart,
    boundary_of,
    parse_options_header,
)

__all__ = ["FormData", "UploadFile", "parse_form"]


class UploadFile:
    """A file uploaded in a multipart form.

    Attributes:
        filename: the name the client gave (never use it as a path as it is).
        content_type: the part's ``Content-Type`` (``application/octet-stream`` when absent).
        headers: the part's headers, (lowercase name, value) pairs.
        size: its length in bytes.
        file: the data: a ``SpooledTemporaryFile`` (memory, then disk past the spool size).
    """

    def __init__(
        self,
        filename: str,
        content_type: str = "application/octet-stream",
        headers: list[tuple[str, str]] | None = None,
        *,
        spool_bytes: int = limits.FORM_SPOOL_BYTES,
        spool_dir: str | None = None,
    ) -> None:
        self.filename = filename
        self.content_type = content_type
        self.headers = headers or []
        self.size = 0
        self._spool_bytes = spool_bytes
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(  # noqa: SIM115 (closed by close())
            max_size=spool_bytes, dir=spool_dir
        )

    @property
    def in_memory(self) -> bool:
        """True while the data is still held in memory (not yet moved to disk)."""
        return self.size <= self._spool_bytes

    async def write(self, data: bytes) -> None:
        """Append ``data``; on disk, the write happens in a thread."""
        if self.in_memory and self.size + len(data) <= self._spool_bytes:
            self.file.write(data)
        else:
            await asyncio.to_thread(self.file.write, data)
        self.size += len(data)

    async def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all by default) from the current position."""
        if self.in_memory:
            return self.file.read(size)
        return await asyncio.to_thread(self.file.read, size)

    async def seek(self, offset: int) -> None:
        """Move to byte ``offset``."""
        self.file.seek(offset)

    async def close(self) -> None:
        """Close the file (a temporary file on disk is removed)."""
        self.file.close()

    def __repr__(self) -> str:
        return f"<UploadFile {self.filename!r} {self.content_type} {self.size} bytes>"


class FormData:
    """A form's fields in order, several values per name allowed.

    ``form["name"]`` is the first value (a ``str``, or an ``UploadFile`` for a file);
    ``getlist`` gives every value.
    """

    def __init__(self, items: list[tuple[str, str | UploadFile]] | None = None) -> None:
        self._items = items or []

    def __getitem__(self, name: str) -> str | UploadFile:
        for key, value in self._items:
            if key == name:
                return value
        raise KeyError(name)

    def get(self, name: str, default: str | None = None) -> str | UploadFile | None:
        """The first value of ``name``, or ``default``."""
        try:
            return self[name]
        except KeyError:
            return default

    def getlist(self, name: str) -> list[str | UploadFile]:
        """Every value of ``name``, in order."""
        return [value for key, value in self._items if key == name]

    def items(self) -> list[tuple[str, str | UploadFile]]:
        """Every (name, value) pair, repeats kept."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return any(key == name for key, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(key for key, _ in self._items))

    def __len__(self) -> int:
        return len(self._items)

    async def close(self) -> None:
        """Close every uploaded file."""
        for _, value in self._items:
            if isinstance(value, UploadFile):
                await value.close()

    async def __aenter__(self) -> FormData:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"<FormData {len(self._items)} fields>"


async def parse_form(
    content_type: str,
    stream: AsyncIterator[bytes],
    *,
    max_size: int,
    max_fields: int = limits.FORM_MAX_FIELDS,
    max_files: int = limits.FORM_MAX_FILES,
    max_part_size: int = limits.FORM_MAX_PART_BYTES,
    spool_bytes: int = limits.FORM_SPOOL_BYTES,
    spool_dir: str | None = None,
) -> FormData:
    """Read a form body from ``stream``: urlencoded or multipart, by ``content_type``.

    ``max_size`` bounds the whole body (the route's ``max_body_size``).

    Raises:
        HTTPError: 415 another content type, 400 malformed or too many fields or files,
            413 a text part or the whole body too large.
    """
    kind, _ = parse_options_header(content_type)
    if kind == "application/x-www-form-urlencoded":
        return await _urlencoded(stream, max_size, max_fields)
    if kind == "multipart/form-data":
        try:
            boundary = boundary_of(content_type)
        except MultipartError as exc:
            raise HTTPError(400, str(exc)) from exc
        form = FormData()
        try:
            await _multipart(
                form,
                boundary,
                stream,
                max_size,
                max_fields,
                max_files,
                max_part_size,
                spool_bytes,
                spool_dir,
            )
        except BaseException:
            await form.close()  # no temporary file outlives a refused form
            raise
        return form
    raise HTTPError(
        415,
        "expected a form: application/x-www-form-urlencoded or multipart/form-data, "
        f"not {kind or 'no content type'}",
    )


async def _urlencoded(stream: AsyncIterator[bytes], max_size: int, max_fields: int) -> FormData:
    body = bytearray()
    async for chunk in stream:
        body += chunk
        if len(body) > max_size:
            raise HTTPError(413, f"form larger than {max_size} bytes")
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=max_fields)
    except UnicodeDecodeError as exc:
        raise HTTPError(400, "form is not valid UTF-8") from exc
    except ValueError as exc:  # parse_qsl's "Max number of fields exceeded"
        raise HTTPError(400, f"form has more than {max_fields} fields") from exc
    return FormData(list(pairs))


async def _multipart(
    form: FormData,
    boundary: bytes,
    stream: AsyncIterator[bytes],
    max_size: int,
    max_fields: int,
    max_files: int,
    max_part_size: int,
    spool_bytes: int,
    spool_dir: str | None,
) -> None:
    parser = MultipartParser(boundary)
    total = fields = files = 0
    name = ""
    upload: UploadFile | None = None
    text = bytearray()
    done = False
    async for chunk in stream:
        total += len(chunk)
        if total > max_size:
            raise HTTPError(413, f"form larger than {max_size} bytes")
        try:
            events = parser.feed(chunk)
        except MultipartError as exc:
            raise HTTPError(400, str(exc)) from exc
        for event in events:
            if isinstance(event, PartData):
                if upload is not None:
                    await upload.write(event.data)
                else:
                    text += event.data
                    if len(text) > max_part_size:
                        raise HTTPError(
                            413, f"form field {name!r} larger than {max_part_size} bytes"
                        )
            elif isinstance(event, PartStart):
                fields += 1
                if fields > max_fields:
                    raise HTTPError(400, f"form has more than {max_fields} fields")
                name, filename, part_type = _disposition(event.headers)
                if filename is not None:
                    files += 1
                    if files > max_files:
                        raise HTTPError(400, f"form has more than {max_files} files")
                    upload = UploadFile(
                        filename,
                        part_type or "application/octet-stream",
                        event.headers,
                        spool_bytes=spool_bytes,
                        spool_dir=spool_dir,
                    )
                    form._items.append((name, upload))
                else:
                    upload = None
                    text = bytearray()
            elif isinstance(event, PartEnd):
                if upload is not None:
                    await upload.seek(0)
                else:
                    try:
                        form._items.append((name, text.decode("utf-8")))
                    except UnicodeDecodeError as exc:
                        raise HTTPError(400, f"form field {name!r} is not valid UTF-8") from exc
                upload = None
            elif isinstance(event, Done):
                done = True
    if not done:
        raise HTTPError(400, "multipart body ended before its closing boundary")


def _disposition(headers: list[tuple[str, str]]) -> tuple[str, str | None, str | None]:
    disposition = part_type = None
    for key, value in headers:
        if key == "content-disposition" and disposition is None:
            disposition = value
        elif key == "content-type" and part_type is None:
            part_type = value
    if disposition is None:
        raise HTTPError(400, "a multipart part has no Content-Disposition header")
    kind, params = parse_options_header(disposition)
    if kind != "form-data" or "name" not in params:
        raise HTTPError(400, "a multipart part's Content-Disposition is not form-data with a name")
    return params["name"], params.get("filename"), part_type
