"""``python -m benchmarks.compare``: this package against the servers a user would pick instead.

Every server serves the same minimal app (``apps/``) over HTTPS with the same certificate, in
one process pinned to core 0, started and stopped here on loopback; the load runs on core 1,
from wrk (when installed) and from ``framework load``, one after the other. Each round starts
every server in turn (in a rotated order) and runs each scenario on it, so slow drift of the
machine spreads over all servers. The report gives medians with min-max over rounds, the
ratio of this package to each server, the server's CPU per request, memory per idle TLS
connection, the access log's cost, and how closely wrk and ``framework load`` agree.
``--quick`` is the few-seconds-per-server mode CI runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from framework.load.cli import duration_arg
from framework.load.report import format_us, machine_info

from .servers import (
    SERVERS,
    Launched,
    ServerSpec,
    available,
    idle_connection_memory,
    make_certificates,
)
from .tools import SCENARIOS, Measured, Scenario, run_locust, run_ours, run_wrk, wrk_path

__all__ = ["main", "render_markdown", "run_comparison"]

OURS = "framework"

#: wrk and framework load must agree this closely on a server that is the bottleneck.
AGREEMENT_TOLERANCE = 0.15
#: Above this share of its core, framework load is the bottleneck, not the server.
GENERATOR_BOUND = 0.9


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _measure(
    tool: str, server: Launched, scenario: Scenario, seconds: float, ca: Path, connections: int
) -> Measured:
    cpu0 = server.cpu_seconds()
    if tool == "wrk":
        m = run_wrk(server.url, scenario, seconds, connections)
    else:
        m = run_ours(server.url, scenario, seconds, ca, connections, warmup=0.0)
    cpu = server.cpu_seconds() - cpu0
    if m.requests:
        m.server_cpu_us_per_request = cpu / m.requests * 1e6
    return m


def run_comparison(
    *,
    servers: Sequence[ServerSpec],
    scenarios: Sequence[Scenario],
    tools: Sequence[str],
    rounds: int,
    seconds: float,
    connections: int,
    memory_connections: int,
    generators: bool,
    workdir: Path,
) -> dict[str, Any]:
    """Run everything and return the raw results (see ``render_markdown``)."""
    certs = make_certificates(workdir / "pki")
    skipped = {}
    runnable = []
    for spec in servers:
        why = available(spec)
        if why:
            skipped[spec.name] = why
            _log(f"compare: skipping {spec.name}: {why}")
        else:
            runnable.append(spec)
    runs: dict[str, dict[str, dict[str, list[dict[str, Any]]]]] = {}
    memory: dict[str, float] = {}
    started = time.monotonic()
    for r in range(rounds):
        order = runnable[r % len(runnable) :] + runnable[: r % len(runnable)] if runnable else []
        for spec in order:
            _log(f"compare: round {r + 1}/{rounds}: {spec.name}")
            try:
                server = Launched.start(spec, certs, workdir / "servers")
            except RuntimeError as exc:
                skipped[spec.name] = str(exc)
                _log(f"compare: {exc}")
                continue
            try:
                if r == 0 and memory_connections:
                    memory[spec.name] = idle_connection_memory(server, certs.ca, memory_connections)
                # Warm the server up (imports, caches, the first handshakes) unmeasured.
                run_ours(
                    server.url, scenarios[0], min(1.0, seconds), certs.ca, connections, warmup=0.0
                )
                for scenario in scenarios:
                    if spec.scenarios is not None and scenario.name not in spec.scenarios:
                        continue
                    for tool in tools:
                        m = _measure(tool, server, scenario, seconds, certs.ca, connections)
                        runs.setdefault(scenario.name, {}).setdefault(spec.name, {}).setdefault(
                            tool, []
                        ).append(m.to_json())
            finally:
                server.stop()
    gens: dict[str, Any] = {}
    if generators:
        try:
            gens = _compare_generators(certs, workdir, seconds * 2, connections)
        except Exception as exc:  # the server tables above must still be reported
            _log(f"compare: load generators: {exc!r}")
            gens = {"skipped": f"failed: {exc!r}"}
    return {
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine_info(),
        "settings": {
            "rounds": rounds,
            "seconds": seconds,
            "connections": connections,
            "tools": list(tools),
            "memory_connections": memory_connections,
            "server_core": 0,
            "load_core": 1,
        },
        "servers": {
            s.name: {"kind": s.kind, "note": s.note, "reference": s.reference} for s in servers
        },
        "scenarios": {s.name: s.title for s in scenarios},
        "skipped": skipped,
        "runs": runs,
        "memory_bytes_per_idle_connection": memory,
        "generators": gens,
        "wall_seconds": round(time.monotonic() - started, 1),
    }


def _compare_generators(
    certs: Any, workdir: Path, seconds: float, connections: int
) -> dict[str, Any]:
    """wrk, framework load and locust's FastHttpUser against nginx, one core each side."""
    nginx = next(s for s in SERVERS if s.kind == "nginx")
    why = available(nginx)
    if why:
        return {"skipped": why}
    _log("compare: load generators against nginx")
    server = Launched.start(nginx, certs, workdir / "servers")
    out: dict[str, Any] = {}
    hello = SCENARIOS[0]
    try:
        if wrk_path():
            out["wrk -t1"] = run_wrk(server.url, hello, seconds, connections).to_json()
        out["framework load"] = run_ours(
            server.url, hello, seconds, certs.ca, connections
        ).to_json()
        locust = run_locust(server.url, seconds, connections)
        out["locust FastHttpUser"] = locust if isinstance(locust, str) else locust.to_json()
    finally:
        server.stop()
    return out


# --- the report ----------------------------------------------------------------------------


def _stat(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def _rate(values: list[float]) -> str:
    med, lo, hi = _stat(values)
    return f"{med:,.0f} ({lo:,.0f}–{hi:,.0f})" if len(values) > 1 else f"{med:,.0f}"


#: The tables' latency and CPU cells: one decimal, and milliseconds however long.
_ms = partial(format_us, places=1, seconds=False)


def summarize(results: dict[str, Any]) -> dict[str, Any]:
    """Medians per scenario, server and tool; ratios to this package; agreement of the tools."""
    out: dict[str, Any] = {}
    for scenario, by_server in results["runs"].items():
        rows = {}
        for server, by_tool in by_server.items():
            row = {}
            for tool, ms in by_tool.items():
                row[tool] = {
                    "rps": _stat([m["requests_per_second"] for m in ms]),
                    "p50_us": statistics.median(m["p50_us"] for m in ms),
                    "p99_us": statistics.median(m["p99_us"] for m in ms),
                    "cpu_us": statistics.median(m["server_cpu_us_per_request"] or 0 for m in ms),
                    "errors": sum(m["errors"] for m in ms),
                    "load_cpu": statistics.median(m.get("load_cpu_share") or 0 for m in ms),
                    "rps_all": [m["requests_per_second"] for m in ms],
                }
            rows[server] = row
        out[scenario] = rows
    return out


def _primary(row: dict[str, Any]) -> dict[str, Any] | None:
    return row.get("wrk") or row.get("load")


def render_markdown(results: dict[str, Any], command: str = "") -> str:
    """The report as Markdown tables."""
    s = results["settings"]
    m = results["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    if "wrk" in s["tools"]:
        source = "Primary figures from `wrk -t1`; `load` is `framework load` on the same server."
    else:
        source = "Figures from `framework load` (`load`); wrk was not run."
    lines = [
        f"Measured {results['date']} on {m['cpu']} ({m['cores']} cores), {m['os']}, "
        f"Python {m['python']}, {m['openssl']}; {versions}.",
        "",
        f"Server pinned to core {s['server_core']}, load on core {s['load_core']}; "
        f"{s['connections']} connections, HTTPS, uvloop everywhere; {s['rounds']} round(s) of "
        f"{s['seconds']:g} s per tool; medians (min–max over rounds). " + source,
    ]
    if command:
        lines += ["", f"Command: `{command}`"]
    summary = summarize(results)
    tools = s["tools"]
    for name, title in results["scenarios"].items():
        rows = summary.get(name)
        if not rows:
            continue
        ours = _primary(rows.get(OURS, {}))
        lines += ["", f"#### {name}: {title}", ""]
        head = (
            "| server | req/s | p50 | p99 | server CPU / request | framework ÷ server |"
            " server CPU ÷ framework's |"
        )
        rule = "|---|---:|---:|---:|---:|---:|---:|"
        if len(tools) > 1:
            head += " req/s (load) | p50 (load) |"
            rule += "---:|---:|"
        lines += [head, rule]
        for server, row in rows.items():
            p = _primary(row)
            if p is None:
                continue
            ratio = f"{ours['rps'][0] / p['rps'][0]:.2f}×" if ours and p["rps"][0] else "–"
            # CPU per request is the steadiest figure on a shared machine: above 1, we use less.
            cpu = f"{p['cpu_us'] / ours['cpu_us']:.2f}×" if ours and ours["cpu_us"] else "–"
            label = server + (" ‡" if results["servers"][server]["reference"] else "")
            errors = f" ({p['errors']} errors)" if p["errors"] else ""
            cells = [
                label,
                _rate(p["rps_all"]) + errors,
                _ms(p["p50_us"]),
                _ms(p["p99_us"]),
                _ms(p["cpu_us"]),
                ratio,
                cpu,
            ]
            if len(tools) > 1:
                load = row.get("load")
                cells += [_rate(load["rps_all"]), _ms(load["p50_us"])] if load else ["–", "–"]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "‡ reference rows (a floor or the ceiling), not peers."]
    hello = summary.get("hello", {})
    if OURS in hello and "framework + access log" in hello:
        on, off = _primary(hello["framework + access log"]), _primary(hello[OURS])
        if on and off:
            cost = 1 - on["rps"][0] / off["rps"][0]
            lines += [
                "",
                f"Access log cost (hello): {off['rps'][0]:,.0f} → {on['rps'][0]:,.0f} "
                f"requests/s, {cost:.1%} {'(under' if cost < 0.15 else '(over'} the "
                "15 % budget).",
            ]
    mem = results["memory_bytes_per_idle_connection"]
    if mem:
        lines += [
            "",
            f"#### Memory per idle TLS connection ({s['memory_connections']} "
            "connections, one request each, server RSS growth ÷ N)",
            "",
            "| server | KiB per connection |",
            "|---|---:|",
        ]
        lines += [f"| {k} | {v / 1024:.1f} |" for k, v in mem.items()]
    agreement = agreement_rows(summary)
    if agreement:
        lines += [
            "",
            "#### wrk vs framework load on the same server",
            "",
            f"*agree*: requests/s and p50 within ±{AGREEMENT_TOLERANCE:.0%}; "
            f"*generator-bound*: framework load kept its core over "
            f"{GENERATOR_BOUND:.0%} busy, so it measured itself, not the server.",
            "",
            "| scenario | server | req/s load ÷ wrk | p50 load ÷ wrk | load CPU | verdict |",
            "|---|---|---:|---:|---:|---|",
        ]
        for scenario, server, rps, p50, cpu, verdict in agreement:
            lines.append(
                f"| {scenario} | {server} | {rps:.2f} | {p50:.2f} | {cpu:.0%} | {verdict} |"
            )
        bounded = [row for row in agreement if row[5] != "generator-bound"]
        agreeing = [row for row in bounded if row[5] == "agree"]
        lines += [
            "",
            f"Where the generator had headroom, the two agree in {len(agreeing)} of "
            f"{len(bounded)} cases.",
        ]
    gens = results.get("generators") or {}
    if gens and "skipped" not in gens:
        lines += [
            "",
            "#### Load generators against nginx (hello, one core each)",
            "",
            "| generator | req/s | p50 | p99 |",
            "|---|---:|---:|---:|",
        ]
        for tool, g in gens.items():
            if isinstance(g, str):
                lines.append(f"| {tool} | {g} | | |")
            else:
                lines.append(
                    f"| {tool} | {g['requests_per_second']:,.0f} | {_ms(g['p50_us'])} "
                    f"| {_ms(g['p99_us'])} |"
                )
    if results["skipped"]:
        lines += ["", "Skipped: " + "; ".join(f"{k}: {v}" for k, v in results["skipped"].items())]
    return "\n".join(lines) + "\n"


def agreement_rows(
    summary: dict[str, Any],
) -> list[tuple[str, str, float, float, float, str]]:
    """(scenario, server, load/wrk req/s, load/wrk p50, load CPU share, verdict) per pair run."""
    out = []
    for scenario, rows in summary.items():
        for server, row in rows.items():
            if "wrk" in row and "load" in row and row["wrk"]["rps"][0] and row["wrk"]["p50_us"]:
                rps = row["load"]["rps"][0] / row["wrk"]["rps"][0]
                p50 = row["load"]["p50_us"] / row["wrk"]["p50_us"]
                cpu = row["load"].get("load_cpu", 0.0)
                if abs(rps - 1) <= AGREEMENT_TOLERANCE and abs(p50 - 1) <= AGREEMENT_TOLERANCE:
                    verdict = "agree"
                elif cpu >= GENERATOR_BOUND:
                    verdict = "generator-bound"
                else:
                    verdict = "differ"
                out.append((scenario, server, rps, p50, cpu, verdict))
    return out


# --- the command line ----------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.compare", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="CI mode: 1 round of 1 s, hello and json only, 50 idle connections",
    )
    p.add_argument(
        "--servers",
        help="comma-separated kinds or names (default: all); kinds: "
        + ", ".join(
            f"{kind} ({n} servers)" if n > 1 else kind
            for kind, n in Counter(s.kind for s in SERVERS).items()
        ),
    )
    p.add_argument(
        "--scenarios",
        help="comma-separated (default: all): " + ", ".join(s.name for s in SCENARIOS),
    )
    p.add_argument("--rounds", type=int)
    p.add_argument("-d", "--duration", type=duration_arg, help="seconds per tool and run")
    p.add_argument("-c", "--connections", type=int, default=64)
    p.add_argument("--tools", default="wrk,load", help="wrk,load (default both)")
    p.add_argument("--memory-connections", type=int, help="idle TLS connections to open (1000)")
    p.add_argument(
        "--generators",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also compare load generators (wrk, ours, locust) on nginx",
    )
    p.add_argument("--json", metavar="FILE", help="write the raw results")
    p.add_argument("--markdown", metavar="FILE", help="write the tables")
    args = p.parse_args(argv)
    quick = args.quick
    wanted = set(args.servers.split(",")) if args.servers else None
    servers = [s for s in SERVERS if wanted is None or s.name in wanted or s.kind in wanted]
    if wanted and not servers:
        p.error(f"no server matches {args.servers!r}")
    default_scenarios = ("hello", "json") if quick else tuple(s.name for s in SCENARIOS)
    names = args.scenarios.split(",") if args.scenarios else default_scenarios
    unknown = set(names) - {s.name for s in SCENARIOS}
    if unknown:
        p.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    scenarios = [s for s in SCENARIOS if s.name in names]
    tools = [t for t in args.tools.split(",") if t]
    if "wrk" in tools and not wrk_path():
        _log(
            "compare: wrk is not installed (apt-get install wrk): measuring with "
            "framework load only"
        )
        tools.remove("wrk")
    with tempfile.TemporaryDirectory(prefix="compare-") as tmp:
        results = run_comparison(
            servers=servers,
            scenarios=scenarios,
            tools=tools,
            rounds=args.rounds or (1 if quick else 3),
            seconds=args.duration or (1.0 if quick else 3.0),
            connections=args.connections,
            memory_connections=(
                args.memory_connections
                if args.memory_connections is not None
                else (50 if quick else 1000)
            ),
            generators=args.generators if args.generators is not None else not quick,
            workdir=Path(tmp),
        )
    command = "python -m benchmarks.compare " + " ".join(argv if argv is not None else sys.argv[1:])
    markdown = render_markdown(results, command.strip())
    results["summary"] = summarize(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=list) + "\n")
    if args.markdown:
        Path(args.markdown).write_text(markdown)
    print(markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
