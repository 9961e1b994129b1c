"""Results of a load run: merging processes' stats, the human summary, JSON and the chart.

A result is a plain JSON-ready dict (``build_result``): the settings, the machine and versions
it ran on, the date, and the merged counts and histogram. Everything else here reads one.
matplotlib is optional: ``write_plot`` says so when it is missing.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import ssl
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from .histogram import Histogram
from .settings import ERROR_KINDS

__all__ = [
    "build_result",
    "format_progress",
    "format_stopped",
    "format_summary",
    "format_us",
    "machine_info",
    "merge_stats",
    "write_json",
    "write_plot",
]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict[str, Any]:
    """Where a result comes from: CPU, cores, OS, Python, OpenSSL and package versions."""
    versions = {
        name: _version(name)
        for name in (
            "framework",
            "h11",
            "uvloop",
            "cryptography",
            "uvicorn",
            "httptools",
            "hypercorn",
            "aiohttp",
            "starlette",
            "locust",
        )
    }
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "openssl": ssl.OPENSSL_VERSION,
        "versions": {k: v for k, v in versions.items() if v},
    }


def merge_stats(parts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Add up the ``Stats.to_json()`` of several processes (one histogram, summed counts).

    Requests per second is the sum of each process's own rate, since each measured its own
    window (they start together, to within the spawn time). It counts answered requests only
    (``ok``): a failure is not throughput, however fast it comes back.
    """
    histogram = Histogram.from_json(parts[0]["histogram"]) if parts else Histogram()
    for part in parts[1:]:
        histogram.merge(Histogram.from_json(part["histogram"]))
    errors = {k: sum(p["errors"].get(k, 0) for p in parts) for k in ERROR_KINDS}
    statuses: dict[str, int] = {}
    for p in parts:
        for code, n in p["statuses"].items():
            statuses[code] = statuses.get(code, 0) + n
    elapsed = max((p["elapsed"] for p in parts), default=0.0)

    def rate(key: str) -> float:
        return float(sum(p[key] / p["elapsed"] for p in parts if p["elapsed"] > 0))

    done = sum(p["ok"] for p in parts)
    return {
        "elapsed": elapsed,
        "requests": done + sum(errors.values()),
        "ok": done,
        "errors": errors,
        "error_total": sum(errors.values()),
        "statuses": dict(sorted(statuses.items())),
        "unfinished": sum(p["unfinished"] for p in parts),
        "unsent": sum(p.get("unsent", 0) for p in parts),
        "connects": sum(p["connects"] for p in parts),
        # CPU the load processes used per second measured, in cores: near 1.0 per process
        # means the generator, not the server, set the pace.
        "load_cpu_cores": sum(p["cpu_seconds"] / p["elapsed"] for p in parts if p["elapsed"] > 0),
        "load_cpu_us_per_request": (
            sum(p["cpu_seconds"] for p in parts) * 1e6 / max(1, done + sum(errors.values()))
        ),
        "requests_per_second": sum(p["ok"] / p["elapsed"] for p in parts if p["elapsed"] > 0),
        "bytes_in_per_second": rate("bytes_in"),
        "bytes_out_per_second": rate("bytes_out"),
        "bytes_in": sum(p["bytes_in"] for p in parts),
        "bytes_out": sum(p["bytes_out"] for p in parts),
        "latency_us": histogram.to_json(),
        "first_errors": _first_errors(parts),
        "stopped": _stopped(parts),
    }


def _stopped(parts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """Why the run stopped early, with the failures of every process that stopped."""
    stopped = [p["stopped"] for p in parts if p.get("stopped")]
    if not stopped:
        return None
    return {**stopped[0], "count": sum(s["count"] for s in stopped)}


def _first_errors(parts: Sequence[dict[str, Any]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for part in parts:
        for kind, message in part.get("first_errors", {}).items():
            first.setdefault(kind, message)
    return first


def build_result(
    settings: dict[str, Any], parts: Sequence[dict[str, Any]], interrupted: bool = False
) -> dict[str, Any]:
    """The whole report of a run: settings, machine, date and merged measurements."""
    return {
        "tool": "framework.load",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": settings,
        "machine": machine_info(),
        "interrupted": interrupted,
        **merge_stats(parts),
    }


def format_us(us: float, places: int = 2, *, seconds: bool = True) -> str:
    """A time given in µs, read in µs, ms or (with ``seconds``) s, ms and s to ``places``."""
    if seconds and us >= 1_000_000:
        return f"{us / 1e6:.{places}f} s"
    if us >= 1000:
        return f"{us / 1000:.{places}f} ms"
    return f"{us:.0f} µs"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n:.0f} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def format_summary(result: dict[str, Any]) -> str:
    """The human summary printed at the end of a run."""
    s = result["settings"]
    lines = []
    if s["mode"] == "open-loop":
        mode = (
            f"open-loop at {s['rate']:g} requests/s (latency from when each request was due; "
            "coordinated omission corrected)"
        )
    else:
        mode = (
            "closed-loop (each connection sends its next request when the previous answer "
            "arrives; latency from when it was sent; a stalled server lowers the rate "
            "instead of showing in the latency: use --rate for that)"
        )
    conn = "a new TLS connection per request" if s["new_connection"] else "keep-alive"
    lines.append(f"{s['method']} {s['url']}")
    lines.append(f"  {s['connections']} connections, {conn}, {s['processes']} process(es)")
    lines.append(f"  {mode}")
    if result.get("interrupted"):
        lines.append("  interrupted: results so far")
    lat = result["latency_us"]
    failed = result["error_total"]
    if result["ok"]:
        lines.append(
            f"  {result['ok']:,} requests answered in {result['elapsed']:.2f} s "
            f"(after {s['warmup']:g} s warm-up): {result['requests_per_second']:,.0f} "
            f"requests/s, {_bytes(result['bytes_in_per_second'])}/s in, "
            f"{_bytes(result['bytes_out_per_second'])}/s out"
            + (f"; {failed:,} more failed (not counted in the rate)" if failed else "")
        )
    else:
        lines.append(
            f"  no request was answered in {result['elapsed']:.2f} s (after {s['warmup']:g} s "
            f"warm-up): {failed:,} failed"
        )
    if lat["count"]:
        labels = "  ".join(f"{k:>9}" for k in [*lat["percentiles"], "max", "mean"])
        values = "  ".join(
            f"{format_us(v):>9}" for v in [*lat["percentiles"].values(), lat["max"], lat["mean"]]
        )
        lines.append(f"  latency  {labels}")
        lines.append(f"           {values}")
    else:
        lines.append("  latency  none (no answers)")
    statuses = ", ".join(f"{code}: {n:,}" for code, n in result["statuses"].items()) or "none"
    lines.append(f"  statuses {statuses}")
    errors = result["errors"]
    if result["error_total"]:
        detail = ", ".join(f"{k} {v:,}" for k, v in errors.items() if v)
        lines.append(f"  errors   {result['error_total']:,} ({detail})")
        for kind, message in result.get("first_errors", {}).items():
            lines.append(f"  first {kind} error: {message}")
    else:
        lines.append("  errors   0")
    busy = result["load_cpu_cores"] / max(1, s["processes"])
    lines.append(
        f"  load generator CPU {result['load_cpu_us_per_request']:.0f} µs per request, "
        f"{busy:.0%} of its {s['processes']} core(s)"
    )
    # Saturated only when the generator's CPU went on answered requests: failures that come
    # back at once keep it busy too, and more processes would not help with those.
    if busy > 0.9 and result["ok"] and failed <= 0.01 * result["requests"]:
        lines.append(
            "  warning: the load generator was saturated, so these figures may measure "
            "it rather than the server: add --processes, or use fewer connections"
        )
    if result["unsent"]:
        lines.append(
            f"  {result['unsent']:,} requests fell due but were never sent: the server was "
            "behind when the run ended"
        )
    if result["unfinished"]:
        lines.append(
            f"  {result['unfinished']:,} requests still in flight at the end (not counted)"
        )
    return "\n".join(lines)


def format_stopped(result: dict[str, Any]) -> str:
    """Why a run stopped after its first second: every request failed the same way."""
    stopped = result["stopped"]
    s = result["settings"]
    return (
        f"framework load: stopped after {stopped['after']:g} s: all {stopped['count']:,} requests "
        f"to {s['url']} failed ({stopped['kind']}), none was answered. The first error:\n"
        f"  {stopped['message']}"
    )


def format_progress(elapsed: float, rps: float, p99_us: int, errors: int, warming: bool) -> str:
    """The live line: elapsed, rate, p99 so far, errors."""
    phase = "warm-up " if warming else ""
    return (
        f"{phase}{elapsed:6.1f} s  {rps:>9,.0f} req/s  p99 {format_us(p99_us):>9}  "
        f"errors {errors:,}"
    )


def write_json(result: dict[str, Any], path: str) -> None:
    """Write the full result (settings, machine, histogram) as JSON."""
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
        f.write("\n")


def write_plot(results: Sequence[tuple[str, dict[str, Any]]], path: str) -> str | None:
    """A latency-by-percentile chart (log scale of 1/(1-p)) of one or more results.

    Returns:
        None when written, or a note saying why not (matplotlib missing).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib): no chart written"
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ticks = [0.0, 90.0, 99.0, 99.9, 99.99, 99.999]
    for label, result in results:
        h = Histogram.from_json(result["latency_us"])
        curve = h.percentile_curve()
        xs = [1.0 / max(1e-7, 1.0 - p / 100.0) for p, _ in curve]
        ys = [v / 1000.0 for _, v in curve]
        ax.plot(xs, ys, label=label)
    ax.set_xscale("log")
    ax.set_xticks([1.0 / (1.0 - t / 100.0) for t in ticks])
    ax.set_xticklabels([f"{t:g}%" for t in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.grid(True, which="major", alpha=0.4)
    if results:
        s = results[0][1]["settings"]
        ax.set_title(
            f"{s['method']} {s['url']} ({s['mode']}, {s['connections']} connections)", fontsize=9
        )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
