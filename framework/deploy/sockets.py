"""Listening sockets: TCP addresses, a Unix socket, inherited descriptors, systemd activation.

Every socket is made bound and listening before any app code runs, so that a busy port or a
bad path is a one-line error (exit status 2) and so that worker processes only inherit
sockets and accept on them. On Linux each worker of a ``--workers N`` server may get its own
``SO_REUSEPORT`` socket on the same address, so that the kernel spreads new connections over
the workers evenly; inherited sockets and Unix sockets are shared by all workers instead.
"""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass, field

from .. import limits
from ..errors import FrameworkError

__all__ = [
    "REUSE_PORT",
    "ListenPlan",
    "all_sockets",
    "describe",
    "inherited_socket",
    "open_listeners",
    "parse_bind",
    "systemd_sockets",
    "tcp_sockets",
    "unix_socket",
]

#: Whether each worker can have its own socket on one address with the kernel balancing
#: between them (Linux's SO_REUSEPORT; other systems' option of that name does not balance).
REUSE_PORT = sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")

#: The first descriptor systemd passes (sd_listen_fds(3): SD_LISTEN_FDS_START).
SD_LISTEN_FDS_START = 3


def parse_bind(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT`` (every address) as ``(host, port)``.

    Raises:
        ValueError: the text is not an address with a port; the message shows the forms.
    """
    forms = "use HOST:PORT, [IPV6]:PORT or :PORT, e.g. 127.0.0.1:8443 or [::1]:8443"
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"--bind {text!r}: {forms}")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host:
            raise ValueError(f"--bind {text!r}: {forms} (brackets around an IPv6 address)")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--bind {text!r}: the port must be a number; {forms}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"--bind {text!r}: the port must be 0-65535")
    return host or "0.0.0.0", port


def describe(sock: socket.socket) -> str:
    """Where ``sock`` listens: ``127.0.0.1:8443``, ``[::1]:8443`` or ``unix:/run/app.sock``."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{address.decode() if isinstance(address, bytes) else address}"
    if sock.family == socket.AF_INET6:
        return f"[{address[0]}]:{address[1]}"
    return f"{address[0]}:{address[1]}"


def _listen_error(where: str, exc: OSError) -> FrameworkError:
    if exc.errno == errno.EADDRINUSE:
        fix = "the address is already in use; stop the other server or pick another port"
    elif exc.errno in (errno.EACCES, errno.EPERM):
        fix = "permission denied; ports below 1024 need privileges, pick --port 8443"
    elif exc.errno == errno.EADDRNOTAVAIL:
        fix = "no interface has this address; use an address of this machine, or 0.0.0.0"
    else:
        fix = exc.strerror or str(exc)
    return FrameworkError(f"cannot listen on {where}: {fix}")


def tcp_sockets(
    host: str, port: int, *, reuse_port: bool = False, backlog: int = limits.BACKLOG
) -> list[socket.socket]:
    """Listening TCP sockets on every address ``host`` resolves to (IPv6 ones IPv6-only).

    Raises:
        FrameworkError: the name does not resolve or an address cannot be listened on.
    """
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise FrameworkError(f"cannot listen on {where}: {exc.strerror}") from exc
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
                sock.listen(backlog)
            except OSError as exc:
                raise _listen_error(where, exc) from exc
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def unix_socket(path: str, *, mode: int = 0o660, backlog: int = limits.BACKLOG) -> socket.socket:
    """A listening Unix socket at ``path`` with permissions ``mode``.

    A socket file left behind by a server that is gone is replaced; one that a live server
    still answers on is not (that is a second server on the same path).

    Raises:
        FrameworkError: the path is in use, is not a socket, or cannot be made.
    """
    where = f"unix:{path}"
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(path)
            except OSError:
                os.unlink(path)  # nobody listens: a stale file from a stopped server
            else:
                raise FrameworkError(
                    f"cannot listen on {where}: a server is already listening there; stop it "
                    "or pick another --uds path"
                )
            finally:
                probe.close()
        else:
            raise FrameworkError(
                f"cannot listen on {where}: the path exists and is not a socket; remove it or "
                "pick another --uds path"
            )
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        # The socket is made with no access for anyone else, then given ``mode``: no moment
        # in which a client the mode excludes could connect.
        old = os.umask(0o177)
        try:
            sock.bind(path)
        finally:
            os.umask(old)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise _listen_error(where, exc) from exc
    return sock


def inherited_socket(fd: int) -> socket.socket:
    """The listening stream socket at descriptor ``fd`` (from ``--fd`` or a process manager).

    Raises:
        FrameworkError: ``fd`` is not open, not a socket, not a stream socket or not listening.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise FrameworkError(
            f"--fd {fd}: not an open socket ({exc.strerror or exc}); pass the number of a "
            "listening socket this process inherited"
        ) from exc
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()
        raise FrameworkError(f"--fd {fd}: the socket is not a listening stream (TCP/Unix) socket")
    return sock


def systemd_sockets(environ: MutableMapping[str, str] | None = None) -> list[socket.socket]:
    """The sockets systemd passed (socket activation), or none; the variables are then unset.

    ``LISTEN_PID`` must name this process (the variables are meant for it, not for a child
    that inherited them); ``LISTEN_FDS`` says how many descriptors start at 3. The variables
    are removed so that processes started later do not take the sockets for theirs.
    """
    env = os.environ if environ is None else environ
    pid, count = env.get("LISTEN_PID"), env.get("LISTEN_FDS")
    if pid is None or count is None:
        return []
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        env.pop(name, None)
    try:
        if int(pid) != os.getpid():
            return []
        number = int(count)
    except ValueError:
        return []
    sockets = []
    for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + number):
        os.set_inheritable(fd, False)
        sockets.append(inherited_socket(fd))
    return sockets


@dataclass
class ListenPlan:
    """Where a server listens, as the command line says it.

    Attributes:
        tcp: ``(host, port)`` addresses to bind.
        uds: a Unix socket path, and ``uds_mode`` its permissions.
        fds: descriptors of inherited listening sockets.
        activation: take the sockets systemd passes, when it passes any.
    """

    tcp: list[tuple[str, int]] = field(default_factory=list)
    uds: str | None = None
    uds_mode: int = 0o660
    fds: list[int] = field(default_factory=list)
    activation: bool = True


def open_listeners(
    plan: ListenPlan, slots: int = 1, *, backlog: int = limits.BACKLOG
) -> tuple[list[list[socket.socket]], list[socket.socket]]:
    """The sockets of ``plan``: one list per worker slot, and the sockets all workers share.

    With ``slots > 1`` on Linux each slot gets its own ``SO_REUSEPORT`` socket on every TCP
    address (port 0 is chosen once, for the first slot); elsewhere the TCP sockets are shared.
    Systemd's sockets, ``--fd`` and ``--uds`` are always shared. When systemd passed sockets,
    they replace the TCP addresses (the unit's ``.socket`` file says where to listen).

    Raises:
        FrameworkError: an address cannot be listened on (nothing is left open then).
    """
    shared: list[socket.socket] = []
    per_slot: list[list[socket.socket]] = [[] for _ in range(slots)]
    try:
        activated = systemd_sockets() if plan.activation else []
        shared.extend(activated)
        shared.extend(inherited_socket(fd) for fd in plan.fds)
        if plan.uds is not None:
            shared.append(unix_socket(plan.uds, mode=plan.uds_mode, backlog=backlog))
        addresses = [] if activated else plan.tcp
        reuse = REUSE_PORT and slots > 1
        for host, port in addresses:
            first = tcp_sockets(host, port, reuse_port=reuse, backlog=backlog)
            if not reuse:
                shared.extend(first)
                continue
            per_slot[0].extend(first)
            for sock in first:
                # Port 0 was resolved by the first bind: the other slots join that port.
                bound = sock.getsockname()
                for slot in per_slot[1:]:
                    slot.extend(tcp_sockets(bound[0], bound[1], reuse_port=True, backlog=backlog))
    except BaseException:
        for sock in shared + [s for slot in per_slot for s in slot]:
            sock.close()
        raise
    return per_slot, shared


def all_sockets(
    per_slot: Sequence[Sequence[socket.socket]], shared: Sequence[socket.socket]
) -> list[socket.socket]:
    """Every socket of ``open_listeners``' result, once."""
    return [*shared, *(s for slot in per_slot for s in slot)]
