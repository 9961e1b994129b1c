"""The ``serve`` flags of the process model, and how ``serve`` runs: one process or workers.

``--bind``, ``--uds``, ``--fd`` and systemd socket activation say where to listen (the sockets
are made here, before the app is imported); ``--workers`` says how many processes serve;
``--pid-file`` names the process a manager should signal. A worker started by the supervisor
takes its sockets from the supervisor instead and ignores these flags.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import limits
from .deploy.run import ProcessEvents
from .deploy.sockets import ListenPlan, all_sockets, describe, open_listeners, parse_bind
from .deploy.systemd import Notifier
from .deploy.worker import SupervisorLink, SystemdEvents
from .errors import FrameworkError

__all__ = ["PROCESSES_HELP", "SIGNALS_HELP", "Listening", "add_deploy_flags", "listen_or_supervise"]

#: The signal contract and exit statuses, shown at the end of ``serve --help``.
SIGNALS_HELP = """\
signals:
  SIGTERM, SIGINT  graceful stop: stop accepting, finish in-flight requests, exit 0
                   (a second SIGINT stops at once)
  SIGHUP           re-read the certificate files (the old ones stay if the new ones are
                   refused)
exit status: 0 stopped cleanly, 2 usage or configuration error"""

#: What the process model adds to the contract (after ``SIGNALS_HELP`` or another one).
PROCESSES_HELP = """\
with --workers: the supervisor drains every worker on SIGTERM/SIGINT and forwards SIGHUP
  to each; SIGUSR2 restarts the workers one at a time (a new one serves before an old one
  drains), loading new code
exit status 3: the app's startup raised, or workers kept failing at start-up
systemd: socket activation (LISTEN_FDS) and Type=notify (NOTIFY_SOCKET: READY, RELOADING,
  STOPPING, WATCHDOG, STATUS) are used when systemd sets them; see examples/deploy/"""


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
    """Add ``--bind``, ``--uds``, ``--uds-mode``, ``--fd``, ``--workers``, ``--pid-file``,
    and the signal contract to the end of the parser's help."""
    contract = parser.epilog or SIGNALS_HELP
    parser.epilog = f"{contract}\n\n{PROCESSES_HELP}"
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
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


def _write_pid_file(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        Path(path).write_text(f"{os.getpid()}\n")
    except OSError as exc:
        raise FrameworkError(
            f"cannot write --pid-file {path}: {exc.strerror or exc}; pick a writable path"
        ) from exc
    return path


def _remove_at_exit(pid_file: str | None, uds: str | None) -> None:
    """At exit, remove the PID file (if it still names this process) and the Unix socket file,
    so that a stopped server leaves nothing that says it runs."""
    pid = os.getpid()

    def remove() -> None:
        if os.getpid() != pid:  # a forked child exiting is not this server stopping
            return
        with contextlib.suppress(OSError):
            if pid_file is not None and Path(pid_file).read_text().strip() == str(pid):
                os.unlink(pid_file)
        with contextlib.suppress(OSError):
            if uds is not None:
                os.unlink(uds)

    atexit.register(remove)


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
    if args.no_tls:
        lines.append("framework: plain HTTP (--no-tls): put a TLS-terminating proxy in front")
    elif args.certfile is None:
        # Made here, once, so that the workers do not race to make the development CA.
        from .pki import dev_certificate

        dev = dev_certificate()
        lines.append(f"framework: certificate from the local development CA {dev.ca_cert_path}")
    return lines


@dataclass
class Listening:
    """What ``serve`` listens on and tells: the sockets made, and who hears of its life."""

    sockets: list[socket.socket] = field(default_factory=list)
    events: list[ProcessEvents] = field(default_factory=list)


def listen_or_supervise(args: argparse.Namespace) -> Listening | int:
    """Make the sockets of ``serve``, or, with ``--workers N``, supervise until stopped.

    Returns the sockets (and systemd's or the supervisor's events) for this process to serve
    on; or the exit status of the supervisor, which never imports the app (its workers do);
    or nothing to listen on when ``--reload`` is asked for (its child makes the sockets).
    """
    if getattr(args, "reload", False):
        return Listening()
    handed = SupervisorLink.from_environ()
    if handed is not None:
        sockets, link = handed
        return Listening(sockets, [link])
    backlog = getattr(args, "backlog", None) or limits.BACKLOG
    workers = args.workers or os.cpu_count() or 1
    plan = _plan(args)
    notifier = Notifier.from_environ()
    per_slot, shared = open_listeners(plan, workers, backlog=backlog)
    sockets = all_sockets(per_slot, shared)
    if workers == 1:
        _remove_at_exit(_write_pid_file(args.pid_file), plan.uds)
        events: list[ProcessEvents] = [SystemdEvents(notifier)] if notifier is not None else []
        return Listening(sockets, events)
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
    _remove_at_exit(_write_pid_file(args.pid_file), plan.uds)
    return supervisor.run()
