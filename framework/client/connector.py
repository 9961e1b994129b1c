"""``Connector``: opens the client's connections, TCP then TLS, and explains the failures.

It owns where a connection goes (an address pinned by ``resolve``, or the host), the TLS
context of the handshake (loaded off the event loop, the system's built once per process),
and turning what goes wrong into ``ConnectError``, ``TLSError`` or ``CertificateVerifyError``
with a hint (from ``tls.py``). It knows nothing of pools, requests or responses: the caller
gives it what the new connection needs.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

from .. import limits, tls
from ..errors import ConnectError, ConnectTimeout, TLSError
from .connection import ClientConnection, Origin
from .proxy import ProxyRoutes, open_tunnel

__all__ = ["Connector", "load_context", "system_context"]

PathLike: TypeAlias = "str | os.PathLike[str]"

_system_lock = threading.Lock()
_system_context: ssl.SSLContext | None = None


def system_context() -> ssl.SSLContext:
    """The client context trusting the system's CAs, built once per process (thread-safe).

    Loading the trust store takes milliseconds, so ``Client`` calls this in a worker thread
    the first time, never on the event loop.
    """
    global _system_context
    with _system_lock:
        if _system_context is None:
            _system_context = tls.client_context()
        return _system_context


async def load_context(
    ca: PathLike | Sequence[PathLike] | None,
    cert: PathLike | None,
    key: PathLike | None,
    crl: PathLike | None = None,
) -> ssl.SSLContext:
    """The context for https origins: trusting only ``ca`` (presenting ``cert`` and ``key``
    when given, refusing what ``crl`` revokes), or else the system's CAs; loaded in a worker
    thread.

    Raises:
        CertificateError: a file cannot be loaded.
    """
    if ca is None and cert is None and crl is None:
        if _system_context is not None:
            return _system_context
        return await asyncio.to_thread(system_context)
    return await asyncio.to_thread(tls.client_context, ca, cert=cert, key=key, crl=crl)


class Connector:
    """Opens connections: TCP (to a pinned address when ``resolve`` names one), then TLS.

    Args:
        ssl_context: the context for ``https`` origins (never modified).
        resolve: host name (or ``"host:port"``) to the address to connect to instead; the
            certificate is still checked against the name, as ``curl --resolve`` does.
        max_header_bytes: the largest response head accepted.
        h11_only: read every response with h11, none on the driver's plain path.
        proxies: which origins go through a proxy (https ones tunnelled with ``CONNECT``,
            http ones to the proxy directly, the client writing absolute-form targets).
    """

    def __init__(
        self,
        ssl_context: ssl.SSLContext | None,
        resolve: Mapping[str, str] | None = None,
        max_header_bytes: int = limits.CLIENT_MAX_HEADER_BYTES,
        h11_only: bool = False,
        proxies: ProxyRoutes | None = None,
    ) -> None:
        self.ssl_context = ssl_context
        self.proxies = proxies
        self.h11_only = h11_only
        self.resolve = {key.lower(): value.strip("[]") for key, value in (resolve or {}).items()}
        self.max_header_bytes = max_header_bytes

    def address(self, origin: Origin) -> str:
        """The address to connect to for ``origin``."""
        resolve = self.resolve
        if resolve:
            pinned = resolve.get(f"{origin.host}:{origin.port}") or resolve.get(origin.host)
            if pinned is not None:
                return pinned
        return origin.host

    async def connect(
        self,
        origin: Origin,
        connect_timeout: float | None,
        *,
        on_lost: Callable[[ClientConnection], None],
        keep_alive_expiry: float,
    ) -> ClientConnection:
        """A new connection to ``origin``, handshake done.

        ``on_lost`` and ``keep_alive_expiry`` are handed to the ``ClientConnection``.

        Raises:
            ConnectTimeout: TCP and TLS took longer than ``connect_timeout``.
            CertificateVerifyError: the certificate is not trusted for the host.
            TLSError: the handshake failed otherwise.
            ConnectError: the TCP connection failed (refused, unreachable, unknown name).
        """
        loop = asyncio.get_running_loop()
        conn = ClientConnection(
            origin, loop, on_lost, keep_alive_expiry, self.max_header_bytes, self.h11_only
        )
        address = self.address(origin)
        kwargs: dict[str, Any] = {}
        if origin.scheme == "https":
            if self.ssl_context is None:  # pragma: no cover - the client always supplies one
                raise ConnectError("no TLS context for an https origin")
            # The loop's handshake timeout is a backstop; ours (below) covers TCP and TLS.
            handshake = (
                limits.TLS_HANDSHAKE_TIMEOUT if connect_timeout is None else connect_timeout + 1.0
            )
            # server_hostname is the name, not the pinned address. For an IP literal the ssl
            # module sends no SNI and checks the certificate's IP address entries instead.
            kwargs = {
                "ssl": self.ssl_context,
                "server_hostname": origin.host,
                "ssl_handshake_timeout": handshake,
                "ssl_shutdown_timeout": limits.CLIENT_CLOSE_TIMEOUT,
            }
        proxy = self.proxies.for_origin(origin) if self.proxies is not None else None
        try:
            async with asyncio.timeout(connect_timeout):
                if proxy is None:
                    await loop.create_connection(lambda: conn, address, origin.port, **kwargs)
                elif not kwargs:  # http:// through the proxy: requests in absolute form
                    await loop.create_connection(lambda: conn, proxy.host, proxy.port)
                else:
                    tunnel = await open_tunnel(proxy, origin, address)
                    try:
                        tls_options = {k: v for k, v in kwargs.items() if k != "ssl"}
                        transport = await loop.start_tls(tunnel, conn, kwargs["ssl"], **tls_options)
                    except BaseException:
                        tunnel.abort()
                        raise
                    # start_tls leaves connection_made to its caller.
                    conn.connection_made(transport)  # type: ignore[arg-type]
        except TimeoutError as exc:
            via = "" if proxy is None else f" through the proxy {proxy}"
            raise ConnectTimeout(
                f"connecting to {origin}{via} took longer than {connect_timeout} s"
            ) from exc
        except ssl.SSLCertVerificationError as exc:
            names: list[str] = []
            if tls.is_name_mismatch(exc) and proxy is None:
                names = await _peer_names(address, origin, connect_timeout)
            raise tls.verify_error(exc, origin.host, names, address) from exc
        except ssl.SSLError as exc:
            raise tls.handshake_error(exc, str(origin)) from exc
        except OSError as exc:
            where = origin if address == origin.host else f"{origin} (at {address})"
            if proxy is not None:
                where = f"the proxy {proxy} (for {origin})"
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectError(f"cannot connect to {where}: {reason}") from exc
        if kwargs:
            alpn = conn.transport.get_extra_info("ssl_object").selected_alpn_protocol()  # type: ignore[union-attr]
            if alpn not in (None, "http/1.1"):  # pragma: no cover - we offer only http/1.1
                conn.abort()
                raise TLSError(f"{origin} chose {alpn!r} by ALPN; only http/1.1 is spoken")
        return conn


async def _peer_names(address: str, origin: Origin, connect_timeout: float | None) -> list[str]:
    """The names in the server's certificate, for the hint after a host name mismatch.

    A second handshake fetches the certificate without trusting it; nothing is sent on that
    connection and nothing in it is believed beyond the names quoted in the error message.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(connect_timeout or limits.CLIENT_CONNECT_TIMEOUT):
            transport, _ = await loop.create_connection(
                asyncio.Protocol,
                address,
                origin.port,
                ssl=context,
                server_hostname=origin.host,
            )
    except (OSError, TimeoutError):
        return []
    try:
        der = transport.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        transport.abort()
    return tls.certificate_names(der) if der else []
