"""``Vary`` kept as one list of distinct names, whoever adds to it."""

from __future__ import annotations

from ..headers import Headers

__all__ = ["add_vary"]


def add_vary(headers: Headers, name: str) -> None:
    """Add ``name`` to the response's ``Vary`` unless it (or ``*``) is there already."""
    present = [v.strip() for value in headers.get_all("vary") for v in value.split(",")]
    lowered = {v.lower() for v in present if v}
    if name.lower() in lowered or "*" in lowered:
        return
    headers["vary"] = ", ".join([*(v for v in present if v), name])
