"""Middleware an ``App`` is given: ``app.middleware(CORSMiddleware(...))``.

Each is a callable ``async (request, call_next) -> Response``, the shape ``App.middleware``
takes; none of them imports the app.
"""

from __future__ import annotations

from .compress import CompressionMiddleware
from .cors import CORSMiddleware

__all__ = ["CORSMiddleware", "CompressionMiddleware"]
