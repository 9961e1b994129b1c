"""The HTTP-01 answer (RFC 8555 section 8.3) on a plain-HTTP listener, and its redirect.

``/.well-known/acme-challenge/{token}`` answers with the key authorization of a pending
challenge; every other request is redirected to the same path over HTTPS, as Caddy does on
port 80.
"""

from __future__ import annotations

from ..messages import Request, Response

__all__ = ["CHALLENGE_PREFIX", "Http01Responder"]

CHALLENGE_PREFIX = "/.well-known/acme-challenge/"


class Http01Responder:
    """A server ``Handler`` for port 80: challenge answers, and redirects to HTTPS.

    Args:
        https_port: the port the redirect points at (443 leaves it out of the URL).
    """

    def __init__(self, https_port: int = 443) -> None:
        self.https_port = https_port
        self._answers: dict[str, str] = {}

    def add(self, token: str, key_authorization: str) -> None:
        """Answer ``token`` with ``key_authorization`` until ``remove(token)``."""
        self._answers[token] = key_authorization

    def remove(self, token: str) -> None:
        """Stop answering ``token``."""
        self._answers.pop(token, None)

    async def __call__(self, request: Request) -> Response:
        """Answer a challenge, or redirect to HTTPS."""
        if request.path.startswith(CHALLENGE_PREFIX):
            answer = self._answers.get(request.path[len(CHALLENGE_PREFIX) :])
            if answer is None:
                return Response("no such ACME challenge\n", status=404)
            return Response(answer.encode("ascii"), media_type="application/octet-stream")
        raw = request.headers.get("host") or ""
        # The Host header without its port; an IPv6 literal keeps its brackets.
        host = raw[: raw.find("]") + 1] if raw.startswith("[") else raw.partition(":")[0]
        if not host or any(c in host for c in "/\\?#@ "):
            return Response("this port serves ACME challenges; use HTTPS\n", status=400)
        port = "" if self.https_port == 443 else f":{self.https_port}"
        target = request.raw_path.decode("latin-1")
        if request.query_string:
            target += "?" + request.query_string.decode("latin-1")
        return Response(b"", status=308, headers={"location": f"https://{host}{port}{target}"})
