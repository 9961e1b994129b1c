"""``framework load URL`` (``python -m framework.load URL``): load-test an HTTPS server.

The command line around ``runner.run``: the flags, the live progress line on a terminal, the
summary, ``--json`` and ``--plot``; and ``framework load compare A.json B.json``. A mistake in
the arguments is one line and exit status 2; a run in which every request failed the same way
stops after its first second and prints the first error (exit status 2); a run in which some
requests failed exits with 1.

Examples::

    framework load https://localhost:8443/ --ca pki/ca.pem -c 64 -d 30s
    framework load https://localhost:8443/ --ca pki/ca.pem --rate 2000 -d 60s --json b.json
    framework load compare a.json b.json
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn, TextIO

from ..errors import FrameworkError
from .compare import compare_main
from .report import format_progress, format_stopped, format_summary, write_json, write_plot
from .runner import LOOPS, Progress, run
from .settings import Settings

__all__ = ["duration_arg", "main", "parse_duration", "parse_size", "settings_from_args"]

PROG = "framework load"
PLOT_INSTALL = "pip install 'framework[plot]'"

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1024,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1024**2,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1024**3,
}
_TIME_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_size(text: str) -> int:
    """``"64KiB"`` -> 65536, ``"1MiB"``, ``"1M"`` (10**6), ``"100"``.

    Raises:
        ValueError: not a size.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (try 100, 64KiB or 1MiB)")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_duration(text: str) -> float:
    """``"30s"`` -> 30.0, ``"500ms"``, ``"2m"``, ``"1h"``, ``"10"`` (seconds).

    Raises:
        ValueError: not a duration.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*", text)
    if not m or m.group(2) not in _TIME_UNITS:
        raise ValueError(f"not a duration: {text!r} (try 30s, 500ms or 2m)")
    return float(m.group(1)) * _TIME_UNITS[m.group(2)]


# --- the command line ----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake is one line (not the usage block) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _flag_type(parse: Callable[[str], float], what: str) -> Callable[[str], float]:
    """``parse`` for argparse: its own message instead of "invalid parse_duration value"."""

    def convert(text: str) -> float:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = what
    return convert


#: ``parse_duration`` as an argparse type: a bad value is argparse's one line with our message.
duration_arg = _flag_type(parse_duration, "duration")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Load-test an HTTPS server: closed loop (back to back) or open loop "
        "(--rate, coordinated omission corrected).",
        epilog="framework load compare A.json B.json: two --json results side by side (B/A "
        "for throughput and each percentile).",
    )
    p.add_argument("url", help="https://host:port/path (http:// too)")
    p.add_argument("-c", "--connections", type=int, default=64, help="connections (default 64)")
    p.add_argument(
        "-d",
        "--duration",
        type=duration_arg,
        help="how long to measure: 30s, 2m (default 10s unless -n)",
    )
    p.add_argument("-n", "--requests", type=int, help="measure this many requests, then stop")
    p.add_argument(
        "-w",
        "--warmup",
        type=duration_arg,
        default=1.0,
        help="load first for this long without measuring (default 1s)",
    )
    p.add_argument(
        "-r",
        "--rate",
        type=float,
        help="open loop: this many requests/s in all, latency from when each was due",
    )
    p.add_argument(
        "--new-connection",
        action="store_true",
        help="a new TCP+TLS connection per request (full handshakes, no resumption)",
    )
    p.add_argument("-m", "--method", help="GET, or POST when a body is given")
    p.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeatable)",
    )
    p.add_argument("-b", "--body", help="request body: @FILE, a size (1MiB), or text")
    p.add_argument("--ca", help="trust this CA certificate (PEM) instead of the system's")
    p.add_argument("--cert", help="client certificate (PEM) for mutual TLS")
    p.add_argument("--key", help="the client certificate's key")
    p.add_argument(
        "-t",
        "--timeout",
        type=duration_arg,
        default=10.0,
        help="count a request as a timeout after this long (default 10s)",
    )
    p.add_argument(
        "--fail-status", action="store_true", help="count answers with status >= 500 as errors"
    )
    p.add_argument(
        "-p",
        "--processes",
        type=int,
        default=1,
        help="load processes, one per core to use (default 1)",
    )
    p.add_argument("--loop", choices=LOOPS, default="uvloop")
    p.add_argument("--json", metavar="FILE", help="write the full result, histogram included")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help=f"write a latency percentile chart (needs matplotlib: {PLOT_INSTALL})",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress line")
    return p


def _body(text: str | None) -> bytes:
    if text is None:
        return b""
    if text.startswith("@"):
        with open(text[1:], "rb") as f:
            return f.read()
    try:
        return b"x" * parse_size(text)
    except ValueError:
        return text.encode()


def settings_from_args(argv: Sequence[str] | None = None) -> tuple[Settings, argparse.Namespace]:
    """Parse the command line into ``Settings`` (and the output options)."""
    parser = _parser()
    args = parser.parse_args(argv)
    headers = []
    for h in args.header:
        name, sep, value = h.partition(":")
        if not sep or not name.strip():
            parser.error(f"a header must be 'Name: value', not {h!r}")
        headers.append((name.strip(), value.strip()))
    try:
        body = _body(args.body)
    except OSError as exc:
        parser.error(f"cannot read the body file: {exc}")
    if (args.cert is None) != (args.key is None) and args.key is not None:
        parser.error("--key needs --cert")
    duration = args.duration
    if duration is None and args.requests is None:
        duration = 10.0
    settings = Settings(
        url=args.url,
        connections=args.connections,
        duration=duration,
        requests=args.requests,
        warmup=args.warmup,
        rate=args.rate,
        new_connection=args.new_connection,
        method=(args.method or ("POST" if args.body is not None else "GET")).upper(),
        headers=headers,
        body=body,
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        timeout=args.timeout,
        fail_status=args.fail_status,
        processes=args.processes,
        loop=args.loop,
    )
    return settings, args


def _terminal_progress(out: TextIO) -> Progress:
    def show(elapsed: float, rps: float, p99: int, errors: int, warming: bool) -> None:
        out.write("\r" + format_progress(elapsed, rps, p99, errors, warming) + "\x1b[K")
        out.flush()

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """The command line; returns the exit status (1 when any request failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    settings, args = settings_from_args(argv)
    if args.plot and importlib.util.find_spec("matplotlib") is None:
        print(f"{PROG}: error: --plot needs matplotlib: {PLOT_INSTALL}", file=sys.stderr)
        return 2
    progress = None
    if not args.quiet and sys.stderr.isatty():
        progress = _terminal_progress(sys.stderr)
    try:
        result = run(settings, progress=progress)
    except (ValueError, OSError, FrameworkError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if progress is not None:
        sys.stderr.write("\r\x1b[K")
    if args.json:
        write_json(result, args.json)
    if result.get("stopped"):
        print(format_stopped(result), file=sys.stderr)
        return 2
    print(format_summary(result))
    if args.json:
        print(f"  full result in {args.json}")
    if args.plot:
        note = write_plot([(settings.url, result)], args.plot)
        print(f"  {note}" if note else f"  latency chart in {args.plot}")
    return 1 if result["error_total"] else 0
