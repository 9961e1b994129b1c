"""The ``serve`` flags of the process model, and how ``serve`` runs: one process or workers.

``--bind``, ``--uds``, ``--fd`` and systemd socket activation say where to listen (the sockets
are made here, before the app is imported); ``--workers`` says how many processes serve;
``--pid-file`` names the process a manager should signal. A worker started by the supervisor
takes its sockets from the supervisor instead and ignores these flags.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from . import limits
from .deploy.run import ProcessEvents
from .deploy.sockets import ListenPlan, all_sockets, describe, open_listeners, parse_bind
from .deploy.systemd import Notifier
from .deploy.worker import SupervisorLink, SystemdEvents
from .errors import FrameworkError

__all__ = ["SIGNALS_HELP", "add_deploy_flags", "run_serve"]

#: The signal contract and exit statuses, shown at the end of ``serve --help``.
SIGNALS_HELP = """\
signals:
  SIGTERM, SIGINT  graceful stop: stop accepting, finish in-flight requests, exit 0
                   (a second SIGINT stops at once)
  SIGHUP           re-read the certificate files in every worker (the old ones stay
                   if the new ones are refused)
  SIGUSR2          with --workers > 1: rolling restart, one worker at a time (loads new code)

exit status: 0 stopped cleanly, 2 usage or configuration error, 3 the app's startup raised or
workers kept failing at start-up

systemd: socket activation (LISTEN_FDS) and Type=notify (NOTIFY_SOCKET: READY, RELOADING,
STOPPING, WATCHDOG, STATUS) are used when systemd sets them; see examples/deploy/."""


def _workers(value: str) -> int:
    if value.strip().lower() == "auto":
        return 0
    try:
        count = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of processes or auto, not {value!r}"
        ) from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected 0 (auto) or more processes, not {count}")
    return count


def _mode(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an octal mode such as 660, not {value!r}"
        ) from None
    if not 0 <= mode <= 0o777:
        raise argparse.ArgumentTypeError(f"expected a mode from 000 to 777, not {value!r}")
    return mode


def _fd(value: str) -> int:
    try:
        fd = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a descriptor number, not {value!r}") from None
    if fd < 0:
        raise argparse.ArgumentTypeError(f"expected a descriptor number, not {value!r}")
    return fd


def add_deploy_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``--bind``, ``--uds``, ``--uds-mode``, ``--fd``, ``--workers``, ``--pid-file``."""
    group = parser.add_argument_group("listening and processes")
    group.add_argument(
        "--bind",
        action="append",
        default=[],
        metavar="ADDR",
        help="listen on HOST:PORT, [IPV6]:PORT or :PORT; repeat for several (replaces "
        "--host/--port)",
    )
    group.add_argument("--uds", metavar="PATH", help="listen on a Unix socket at PATH")
    group.add_argument(
        "--uds-mode",
        type=_mode,
        default=0o660,
        metavar="MODE",
        help="permissions of the --uds socket, octal (default 660)",
    )
    group.add_argument(
        "--fd",
        type=_fd,
        action="append",
        default=[],
        metavar="N",
        help="listen on the inherited listening socket at descriptor N",
    )
    group.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="worker processes under a supervisor (0 or auto: one per core; default 1: "
        "no supervisor)",
    )
    group.add_argument(
        "--pid-file", metavar="PATH", help="write the main process's PID to PATH while it runs"
    )


def _plan(args: argparse.Namespace) -> ListenPlan:
    tcp: list[tuple[str, int]] = []
    for text in args.bind:
        try:
            tcp.append(parse_bind(text))
        except ValueError as exc:
            raise FrameworkError(str(exc)) from None
    if not tcp and args.uds is None and not args.fd:
        tcp.append((args.host, args.port))
    return ListenPlan(tcp=tcp, uds=args.uds, uds_mode=args.uds_mode, fds=list(args.fd))


@contextlib.contextmanager
def _pid_file(path: str | None) -> Iterator[None]:
    if path is None:
        yield
        return
    target = Path(path)
    try:
        target.write_text(f"{os.getpid()}\n")
    except OSError as exc:
        raise FrameworkError(
            f"cannot write --pid-file {path}: {exc.strerror or exc}; pick a writable path"
        ) from exc
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if target.read_text().strip() == str(os.getpid()):
                target.unlink()


@contextlib.contextmanager
def _unix_socket_file(path: str | None) -> Iterator[None]:
    """Remove the ``--uds`` socket file at exit, as a stopped server leaves no endpoint."""
    try:
        yield
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


def _announce(sockets: Sequence[socket.socket], args: argparse.Namespace) -> list[str]:
    """The supervisor's start-up lines (the workers print none)."""
    scheme = "http" if args.no_tls else "https"
    tcp = [s for s in sockets if s.family != socket.AF_UNIX]
    if tcp:
        host, port = tcp[0].getsockname()[:2]
        if host in ("127.0.0.1", "::1", "0.0.0.0", "::"):
            host = "localhost"
        elif ":" in host:
            host = f"[{host}]"
        first = f"framework: serving on {scheme}://{host}:{port}/"
    else:
        first = f"framework: serving on {scheme} on {sockets[0].getsockname()}"
    lines = [first, f"framework: listening on {', '.join(dict.fromkeys(map(describe, sockets)))}"]
    if not args.no_tls and args.certfile is None:
        # Made here, once, so that the workers do not race to make the development CA.
        from .pki import dev_certificate

        dev = dev_certificate()
        lines.append(f"framework: certificate from the local development CA {dev.ca_cert_path}")
    return lines


def run_serve(
    args: argparse.Namespace,
    serve_on: Callable[[Sequence[socket.socket], Sequence[ProcessEvents]], None],
    *,
    backlog: int = limits.BACKLOG,
) -> int:
    """Run ``serve``: as a supervisor's worker, as one process, or as a supervisor.

    ``serve_on(sockets, events)`` imports the app and serves it on ``sockets`` until a stop
    signal; the supervisor never calls it (its workers do).
    """
    handed = SupervisorLink.from_environ()
    if handed is not None:
        sockets, link = handed
        serve_on(sockets, [link])
        return 0
    workers = args.workers or os.cpu_count() or 1
    plan = _plan(args)
    notifier = Notifier.from_environ()
    per_slot, shared = open_listeners(plan, workers, backlog=backlog)
    sockets = all_sockets(per_slot, shared)
    if workers == 1:
        events = [SystemdEvents(notifier)] if notifier is not None else []
        with _pid_file(args.pid_file), _unix_socket_file(plan.uds):
            serve_on(sockets, events)
        return 0
    from .deploy.run import _configure_logging
    from .deploy.supervisor import Supervisor

    _configure_logging(args.log_level)
    try:
        announce = _announce(sockets, args)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    supervisor = Supervisor(
        getattr(args, "argv", None) or sys.argv[1:],  # the workers run this command again
        per_slot,
        shared,
        notifier=notifier,
        graceful_timeout=getattr(args, "graceful_timeout", None)
        or limits.GRACEFUL_SHUTDOWN_TIMEOUT,
        announce=announce,
    )
    with _pid_file(args.pid_file), _unix_socket_file(plan.uds):
        return supervisor.run()
