"""Header fields and query strings: ``Headers``, ``QueryParams`` and the charset parameter.

Case-insensitive, multi-valued and ordered, as HTTP/1.1 defines them; names and values are
``str`` (Latin-1 on the wire). Shared by the request, the response and the client; nothing here
knows about bodies, sockets or h11.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TypeAlias
from urllib.parse import parse_qsl

__all__ = ["Headers", "HeadersLike", "QueryParams", "content_charset"]

HeadersLike: TypeAlias = (
    "Headers | Mapping[str, str] | Iterable[tuple[str, str]] | Iterable[tuple[bytes, bytes]]"
)


def _to_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


class Headers:
    """Case-insensitive, multi-valued, ordered HTTP headers.

    ``headers["content-type"]`` gives the first value; ``get_all(name)`` every value.
    Names compare without case; values are ``str`` (decoded as Latin-1, as HTTP/1.1 defines).

    Example::

        Headers({"Content-Type": "text/plain"})
        Headers([("set-cookie", "a=1"), ("set-cookie", "b=2")])
    """

    __slots__ = ("_list",)

    def __init__(self, headers: HeadersLike | None = None) -> None:
        # Stored as h11 gives them: (lowercase name, value), both bytes, so received headers
        # are wrapped without a copy and decoded only when looked at.
        self._list: list[tuple[bytes, bytes]]
        if headers is None:
            self._list = []
        elif isinstance(headers, Headers):
            self._list = list(headers._list)
        else:
            items = headers.items() if isinstance(headers, Mapping) else headers
            self._list = [(_to_bytes(k).lower(), _to_bytes(v)) for k, v in items]

    @classmethod
    def from_raw(cls, raw: list[tuple[bytes, bytes]]) -> Headers:
        """Wrap a list of (lowercase name, value) byte pairs without copying it."""
        self = cls.__new__(cls)
        self._list = raw
        return self

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        """The headers as (lowercase name, value) byte pairs, in order."""
        return self._list

    def __getitem__(self, name: str) -> str:
        key = name.lower().encode("latin-1")
        for k, v in self._list:
            if k == key:
                return v.decode("latin-1")
        raise KeyError(name)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default`` when it is absent."""
        try:
            return self[name]
        except KeyError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order (empty when absent)."""
        key = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self._list if k == key]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        key = name.lower().encode("latin-1")
        return any(k == key for k, _ in self._list)

    def __setitem__(self, name: str, value: str) -> None:
        """Replace every value of ``name`` with ``value``."""
        key = name.lower().encode("latin-1")
        self._list = [(k, v) for k, v in self._list if k != key]
        self._list.append((key, _to_bytes(value)))

    def setdefault(self, name: str, value: str) -> str:
        """Set ``name`` to ``value`` unless present; return the value in force."""
        current = self.get(name)
        if current is None:
            self.add(name, value)
            return value
        return current

    def add(self, name: str, value: str) -> None:
        """Append a value, keeping those already there (``Set-Cookie`` and the like)."""
        self._list.append((name.lower().encode("latin-1"), _to_bytes(value)))

    def __delitem__(self, name: str) -> None:
        key = name.lower().encode("latin-1")
        kept = [(k, v) for k, v in self._list if k != key]
        if len(kept) == len(self._list):
            raise KeyError(name)
        self._list = kept

    def keys(self) -> list[str]:
        """The distinct names, lowercase, in first-seen order."""
        return list(dict.fromkeys(k.decode("latin-1") for k, _ in self._list))

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair, names lowercase, repeats kept."""
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._list]

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._list)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return sorted(self._list) == sorted(other._list)
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers({self.items()!r})"


class QueryParams:
    """The query string, decoded: ``query["page"]`` is the first value, ``get_all`` every one."""

    __slots__ = ("_items",)

    def __init__(self, query_string: str | bytes = "") -> None:
        if isinstance(query_string, bytes):
            query_string = query_string.decode("latin-1")
        self._items = parse_qsl(query_string, keep_blank_values=True)

    def __getitem__(self, name: str) -> str:
        for k, v in self._items:
            if k == name:
                return v
        raise KeyError(name)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name``, or ``default``."""
        try:
            return self[name]
        except KeyError:
            return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``, in order."""
        return [v for k, v in self._items if k == name]

    def items(self) -> list[tuple[str, str]]:
        """Every (name, value) pair, repeats kept."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return any(k == name for k, _ in self._items)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(k for k, _ in self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"QueryParams({self._items!r})"


def content_charset(content_type: str | None) -> str | None:
    """The ``charset`` parameter of a ``Content-Type`` value, or ``None``."""
    if not content_type:
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "charset":
            return value.strip('"') or None
    return None
