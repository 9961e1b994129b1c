"""``StaticFiles``: a directory served over HTTP, safely.

A request path becomes a file only through ``StaticFiles.lookup``: its segments are checked
(no ``..``, no ``.``, no backslash or NUL, no dotfiles unless allowed), the file's real path
must stay inside the directory's real path (a symlink out of it is refused), and only regular
files are sent. The response is a ``FileResponse``, so ``ETag``/``Last-Modified``, 304, 412,
``Range``/206/416 and ``HEAD`` come with it; a ``.br`` or ``.gz`` sibling is sent instead when
the client takes that coding.
"""

from __future__ import annotations

import asyncio
import os
import stat as statmod
from dataclasses import dataclass
from pathlib import Path

from . import files
from .errors import HTTPError
from .messages import FileResponse, RedirectResponse, Request, Response

__all__ = ["StaticFiles"]

# Precompressed siblings in the order they are preferred when the client takes both: brotli
# files are smaller (as Caddy's file_server precompressed and nginx's brotli_static choose).
_SIBLINGS = (("br", ".br"), ("gzip", ".gz"))


@dataclass(frozen=True)
class _Found:
    path: str  # the real path of the file to send
    media_type: str
    encoding: str | None  # the Content-Encoding of a precompressed sibling
    has_siblings: bool  # some coding of it exists: the answer varies by Accept-Encoding


class StaticFiles:
    """Serve the files under ``directory``: a ``Handler``, and what ``App.static`` mounts.

    Args:
        directory: the directory served; it must exist.
        index: the file sent for a directory (a request without its final ``/`` is
            redirected, 308, to it, so relative links resolve); ``None`` for none.
        dotfiles: serve names starting with ``.`` (off: they are 404, like Caddy's ``hide``).
        precompressed: send ``name.br`` or ``name.gz`` instead of ``name`` when it exists and
            the client's ``Accept-Encoding`` takes it, with ``Vary: Accept-Encoding``.
        cache_control: a ``Cache-Control`` value for every file (none by default).

    The path served is the route's ``path`` parameter (``App.static`` routes
    ``/prefix/{path:path}``), else the whole request path. Anything not found, refused or not
    a regular file is 404; methods other than ``GET`` and ``HEAD`` are 405.

    Example::

        app.static("/assets", "public")            # GET /assets/app.css -> public/app.css
        server = Server(StaticFiles("public"))     # a bare file server, no App
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        index: str | None = "index.html",
        dotfiles: bool = False,
        precompressed: bool = True,
        cache_control: str | None = None,
    ) -> None:
        root = Path(directory)
        if not root.is_dir():
            raise ValueError(
                f"static directory {str(directory)!r} ({root.absolute()}) does not exist or is "
                "not a directory; give the directory to serve, e.g. Path(__file__).parent / "
                '"public"'
            )
        self.directory = root
        self.root = os.path.realpath(root)
        self.index = index
        self.dotfiles = dotfiles
        self.precompressed = precompressed
        self.cache_control = cache_control

    async def __call__(self, request: Request) -> Response:
        """Answer ``request`` with a file under the directory (or 304/206/404/405/...).

        As a bare ``Handler`` (no ``App`` around it), refusals are plain-text answers.
        """
        try:
            return await self.response(request)
        except HTTPError as exc:
            return Response(exc.detail or "", exc.status, exc.headers)

    async def response(self, request: Request) -> Response:
        """The answer to ``request``; ``HTTPError`` 404 or 405 for what is not served.

        An ``App`` serving these files calls this, so that its error handlers shape the
        refusals like any other.
        """
        if request.method not in ("GET", "HEAD"):
            raise HTTPError(405, "Method Not Allowed", headers={"Allow": "GET, HEAD"})
        relative = request.path_params.get("path")
        if not isinstance(relative, str):
            relative = request.path
        accept = request.headers.get("accept-encoding") if self.precompressed else None
        # realpath and stat touch the disk: in a thread, as the reads are.
        found = await asyncio.to_thread(self.lookup, relative, accept)
        if isinstance(found, str):  # "redirect"
            return RedirectResponse(_with_slash(request), status=308)
        if found is None:
            raise HTTPError(404, "Not Found")
        response = FileResponse(found.path, media_type=found.media_type)
        if found.encoding is not None:
            response.headers["content-encoding"] = found.encoding
        if found.has_siblings:
            response.headers.add("vary", "Accept-Encoding")
        if self.cache_control is not None:
            response.headers.setdefault("cache-control", self.cache_control)
        return response.for_request(request)

    def lookup(self, relative: str, accept_encoding: str | None = None) -> _Found | str | None:
        """The file ``relative`` names under the directory, ``"redirect"``, or ``None``.

        ``"redirect"``: a directory with an index, asked for without its final ``/``.
        """
        segments = [s for s in relative.split("/") if s]
        for segment in segments:
            if segment in (".", "..") or "\\" in segment or "\x00" in segment:
                return None
            if segment.startswith(".") and not self.dotfiles:
                return None
        real = self._inside(os.path.join(self.root, *segments))
        if real is None:
            return None
        st = _stat(real)
        if st is None:
            return None
        # The type is the requested name's, as nginx does it, not that of a symlink's target.
        name = segments[-1] if segments else ""
        if statmod.S_ISDIR(st.st_mode):
            if self.index is None:
                return None
            if relative and not relative.endswith("/"):
                index = self._inside(os.path.join(real, self.index))
                return "redirect" if index is not None and _is_file(index) else None
            real = self._inside(os.path.join(real, self.index))
            name = self.index
            if real is None:
                return None
            st = _stat(real)
            if st is None:
                return None
        elif relative.endswith("/"):
            return None  # "file.txt/" names a directory that is not there (404, as nginx)
        if not statmod.S_ISREG(st.st_mode):
            return None
        media_type = files.media_type(name)
        if not self.precompressed:
            return _Found(real, media_type, None, False)
        siblings = {}
        for coding, suffix in _SIBLINGS:
            sibling = self._inside(real + suffix)
            if sibling is not None and _is_file(sibling):
                siblings[coding] = sibling
        choice = files.preferred_encoding(accept_encoding, list(siblings))
        if choice is not None:
            return _Found(siblings[choice], media_type, choice, True)
        return _Found(real, media_type, None, bool(siblings))

    def _inside(self, path: str) -> str | None:
        # The real path, symlinks resolved, only when it is still under the root.
        try:
            real = os.path.realpath(path)
        except (OSError, ValueError):
            return None
        if real == self.root or real.startswith(self.root.rstrip(os.sep) + os.sep):
            return real
        return None

    def __repr__(self) -> str:
        return f"<StaticFiles {str(self.directory)!r}>"


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except (OSError, ValueError):
        return None


def _is_file(path: str) -> bool:
    st = _stat(path)
    return st is not None and statmod.S_ISREG(st.st_mode)


def _with_slash(request: Request) -> str:
    target = request.raw_path.decode("latin-1") + "/"
    if request.query_string:
        target += "?" + request.query_string.decode("latin-1")
    return target
