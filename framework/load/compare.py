"""``framework load compare A.json B.json``: two runs side by side, as ratios of B to A.

For an A/B test of a change: run ``framework load ... --json a.json`` before it and
``--json b.json`` after, then compare. Throughput and each latency percentile are given as
B/A; the settings that differ between the runs are named, since a ratio across different
settings compares the settings, not the change.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any, NoReturn

from .report import format_us

__all__ = ["compare", "compare_main", "load_result"]

# Settings that change what is measured; the others (output files, quiet) do not.
_COMPARED = ("url", "method", "connections", "mode", "rate", "new_connection", "body_bytes")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def load_result(path: str) -> dict[str, Any]:
    """Read a result written by ``--json``.

    Raises:
        ValueError: the file cannot be read or is not a load result.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not JSON ({exc}); write one with --json FILE") from None
    if (
        not isinstance(data, dict)
        or "requests_per_second" not in data
        or "percentiles" not in data.get("latency_us", {})
    ):
        raise ValueError(f"{path} is not a result of framework load --json")
    return data


def _ratio(a: float, b: float) -> str:
    return f"×{b / a:.2f}" if a else "n/a"


def compare(a: dict[str, Any], b: dict[str, Any], names: tuple[str, str] = ("A", "B")) -> str:
    """The comparison of two results: a summary line, then one line per figure."""
    la, lb = a["latency_us"], b["latency_us"]
    keys = [k for k in la["percentiles"] if k in lb["percentiles"]]
    rps_a, rps_b = a["requests_per_second"], b["requests_per_second"]
    summary = f"{names[1]} vs {names[0]}: throughput {_ratio(rps_a, rps_b)}"
    summary += "".join(f", {k} {_ratio(la['percentiles'][k], lb['percentiles'][k])}" for k in keys)
    lines = [summary, f"  {'':<12}{names[0]:>14}{names[1]:>14}{'B/A':>9}"]
    lines.append(f"  {'requests/s':<12}{rps_a:>14,.0f}{rps_b:>14,.0f}{_ratio(rps_a, rps_b):>9}")
    for k in [*keys, "max", "mean"]:
        va = la["percentiles"][k] if k in keys else la[k]
        vb = lb["percentiles"][k] if k in keys else lb[k]
        lines.append(f"  {k:<12}{format_us(va):>14}{format_us(vb):>14}{_ratio(va, vb):>9}")
    errors_a, errors_b = a.get("error_total", 0), b.get("error_total", 0)
    lines.append(f"  {'errors':<12}{errors_a:>14,}{errors_b:>14,}")
    sa, sb = a.get("settings", {}), b.get("settings", {})
    differ = [f"{k} {sa.get(k)!r} vs {sb.get(k)!r}" for k in _COMPARED if sa.get(k) != sb.get(k)]
    if differ:
        lines.append("  note: the runs differ in " + "; ".join(differ))
    return "\n".join(lines)


def compare_main(argv: Sequence[str]) -> int:
    """``framework load compare A.json B.json``; returns the exit status."""
    parser = _Parser(
        prog="framework load compare",
        description="Compare two results of framework load --json: B/A for throughput and "
        "each latency percentile.",
    )
    parser.add_argument("a", metavar="A.json", help="the baseline (before the change)")
    parser.add_argument("b", metavar="B.json", help="the candidate (after it)")
    args = parser.parse_args(argv)
    try:
        a, b = load_result(args.a), load_result(args.b)
    except ValueError as exc:
        parser.error(str(exc))
    print(compare(a, b, (args.a, args.b)))
    return 0
