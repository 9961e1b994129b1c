"""The benchmark suite measures what it claims: latency, stalls, errors; compare makes its table.

The load generator runs against servers with a known, injected delay (it must measure it), a
server that stalls once (open loop must show it, closed loop hides it), and servers that reset
or refuse connections (every failure counted once, under its kind).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h11
import pytest

from benchmarks.compare import AGREEMENT_TOLERANCE
from benchmarks.tools import Scenario, parse_wrk, run_ours, run_wrk
from framework import pki
from framework.load.cli import parse_duration, parse_size, settings_from_args
from framework.load.histogram import Histogram
from framework.load.report import format_summary
from framework.load.runner import run
from framework.load.settings import Settings
from framework.messages import Request, Response
from framework.tls import server_context
from tests.conftest import TLSFiles, require_tool, serve_in_thread

ROOT = Path(__file__).resolve().parent.parent
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None

# --- the histogram -------------------------------------------------------------------------


def test_histogram_values_within_bucket_precision() -> None:
    h = Histogram()
    for v in (0, 1, 255, 511, 512, 513, 1000, 50_000, 1_000_000, 60_000_000, 3_600_000_000):
        i = h.index(v)
        assert h.lowest(i) <= v <= h.highest(i)
        assert h.highest(i) - h.lowest(i) <= max(1, v / 256)


def test_histogram_buckets_are_contiguous() -> None:
    h = Histogram(bits=4)
    for i in range(1, len(h.counts)):
        assert h.lowest(i) == h.highest(i - 1) + 1


def test_histogram_percentiles_of_uniform_values() -> None:
    h = Histogram()
    for v in range(1, 10_001):
        h.record(v * 10)  # 10 µs .. 100 ms
    assert h.count == 10_000
    assert h.min == 10
    assert h.max == 100_000
    assert h.percentile(50) == pytest.approx(50_000, rel=0.005)
    assert h.percentile(99) == pytest.approx(99_000, rel=0.005)
    assert h.percentile(100) == 100_000
    assert h.mean == pytest.approx(50_005)


def test_histogram_merge_and_json_round_trip() -> None:
    a, b = Histogram(), Histogram()
    for v in range(1000):
        a.record(v)
        b.record(v + 1_000_000)
    a.merge(Histogram.from_json(b.to_json()))
    assert a.count == 2000
    assert a.min == 0
    assert a.max == 1_000_999
    assert a.percentile(25) < 1000 < a.percentile(75)
    again = Histogram.from_json(a.to_json())
    assert again.counts == a.counts
    assert again.total == a.total
    with pytest.raises(ValueError, match="cannot merge"):
        a.merge(Histogram(bits=5))


def test_histogram_empty_and_huge_values() -> None:
    h = Histogram()
    assert h.percentile(99) == 0
    assert h.percentile_curve() == []
    h.record(10**12)  # past an hour: the top bucket, max exact
    assert h.max == 10**12
    assert h.percentile(50) <= h.max


# --- the command line ----------------------------------------------------------------------


def test_sizes_and_durations_parse() -> None:
    assert parse_size("64KiB") == 65536
    assert parse_size("1MiB") == 1048576
    assert parse_size("1M") == 1_000_000
    assert parse_size("100") == 100
    assert parse_duration("30s") == 30
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120
    assert parse_duration("3") == 3
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("soon")


def test_cli_settings_for_an_upload(tmp_path: Path) -> None:
    body = tmp_path / "body.json"
    body.write_bytes(b'{"a": 1}')
    settings, args = settings_from_args(
        [
            "https://localhost:8443/upload",
            "--body",
            f"@{body}",
            "-H",
            "X-Test: 1",
            "-n",
            "10",
            "-c",
            "2",
            "--json",
            "out.json",
        ]
    )
    assert settings.method == "POST"
    assert settings.body == b'{"a": 1}'
    assert settings.headers == [("X-Test", "1")]
    assert settings.requests == 10
    assert settings.duration is None
    assert args.json == "out.json"
    sized, _ = settings_from_args(["https://localhost:8443/", "--body", "1MiB", "-m", "put"])
    assert sized.method == "PUT"
    assert len(sized.body) == 1048576
    assert sized.duration == 10


def test_wrk_output_parses() -> None:
    out = """Running 1s test @ https://localhost:1/
  1 threads and 64 connections
  Latency Distribution
     50%  1.50ms
     75%    2.00ms
     90%  800.00us
     99%    1.20s
  1000 requests in 1.00s, 1.00MB read
  Socket errors: connect 1, read 2, write 0, timeout 3
Requests/sec:   1000.50
"""
    m = parse_wrk(out)
    assert m.requests_per_second == 1000.5
    assert m.requests == 1000
    assert m.p50_us == 1500
    assert m.p99_us == 1_200_000
    assert m.errors == 6


# --- measuring a known delay ---------------------------------------------------------------


class _Delayed:
    """Answers after 50 ms, noting when each request reached it and when it was done.

    The times are ``perf_counter_ns``, the load generator's clock: the server runs in a thread
    of the process that runs the load.
    """

    def __init__(self) -> None:
        self.entered: list[int] = []
        self.left: list[int] = []

    async def __call__(self, request: Request) -> Response:
        self.entered.append(time.perf_counter_ns())
        await asyncio.sleep(0.05)  # the injected delay the load generator must measure
        self.left.append(time.perf_counter_ns())
        return Response("ok")


def _settings(url: str, tls_files: TLSFiles, **kw: Any) -> Settings:
    return Settings(url=url, ca=str(tls_files.ca_cert), **kw)


@pytest.mark.slow
@pytest.mark.parametrize("rate", [None, 16.0], ids=["closed-loop", "open-loop"])
def test_load_measures_a_known_delay(tls_files: TLSFiles, rate: float | None) -> None:
    # Bounds from what the server saw, not a tolerance around 50 ms (which a loaded machine or
    # coverage tracing stretches past any fixed margin). One connection, no warm-up and a
    # request count: the server gets exactly the requests measured, one at a time and in
    # order, and notes on the generator's clock when each reached the handler and left it.
    # Each request's latency (from when it was sent, in open loop from when it fell due, to
    # when its answer was in) then lies, however slow the machine, between
    # - the handler's time: the request was sent before the handler got it, answered after;
    # - the time from its earliest possible start to the next request's arrival (sent only
    #   after this answer; after the last answer, run() returns). Earliest start: closed loop,
    #   when the previous handler returned (the first: when run() was called); open loop, when
    #   it fell due: run()'s start plus one interval per request before it.
    # Within its bounds request by request puts every percentile, the min and the max of the
    # histogram within those of the bounds' histograms. The bounds are a round trip or two
    # apart in closed loop; in open loop they are also apart by the idle time between an
    # answer and the next due request (invisible to the server), hence 16/s: about 12 ms idle.
    # A server that falls behind there is still measured, and bounded, from when each fell due.
    requests = 20
    handler = _Delayed()
    with serve_in_thread(handler, tls_files, loop="asyncio") as server:
        before = time.perf_counter_ns()
        result = run(
            _settings(
                server.url + "/",
                tls_files,
                connections=1,
                requests=requests,
                duration=None,
                warmup=0,
                rate=rate,
            )
        )
        after = time.perf_counter_ns()
    entered, left = handler.entered, handler.left
    latency = result["latency_us"]
    assert len(entered) == len(left) == result["ok"] == latency["count"] == requests
    assert result["error_total"] == 0
    interval = int(1 / rate * 1e9) if rate else 0  # as the engine schedules one connection
    shortest, longest = Histogram(), Histogram()
    for i in range(requests):
        shortest.record((left[i] - entered[i]) // 1000)
        if rate:
            start = before + i * interval
        else:
            start = left[i - 1] if i else before
        end = entered[i + 1] if i + 1 < requests else after
        longest.record((end - start) // 1000)
    assert latency["min"] >= 50_000  # the delay can never be shorter than 50 ms
    assert shortest.min <= latency["min"]
    assert latency["max"] <= longest.max
    low, high = shortest.percentiles(), longest.percentiles()
    for name, value in latency["percentiles"].items():
        assert low[name] <= value <= high[name], name
    # The rate: no faster than the requests' spacing allows (one at a time, each taking its
    # latency; in open loop one interval apart), no slower than run()'s own duration implies.
    wall = (after - before) / 1e9
    if rate:  # the last request falls due (requests - 1) intervals in
        fastest = requests / ((requests - 1) * interval / 1e9)
    else:
        fastest = requests / (latency["total"] / 1e6)
    assert requests / wall < result["requests_per_second"] <= fastest
    assert result["statuses"] == {"200": result["ok"]}
    assert result["settings"]["mode"] == ("open-loop" if rate else "closed-loop")
    assert result["settings"]["mode"] in format_summary(result)


class _Stall:
    """A handler that makes the whole server pause for one second, once, at request ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0
        self.until = 0.0

    async def __call__(self, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        self.seen += 1
        if self.seen == self.at:
            self.until = loop.time() + 1.0
        if loop.time() < self.until:
            await asyncio.sleep(self.until - loop.time())  # the injected stall under test
        return Response("ok")


@pytest.mark.slow
def test_open_loop_shows_a_stall_that_closed_loop_hides(tls_files: TLSFiles) -> None:
    # 200 requests/s for 3 s: ~200 fall due during the stall and wait up to a second, so the
    # p99 is the stall. Closed loop sends only 4 requests into it, so its p99 misses it.
    with serve_in_thread(_Stall(at=250), tls_files, loop="uvloop") as server:
        open_loop = run(
            _settings(
                server.url + "/", tls_files, connections=4, duration=3.0, warmup=0.5, rate=200.0
            )
        )
    with serve_in_thread(_Stall(at=250), tls_files, loop="uvloop") as server:
        closed = run(
            _settings(server.url + "/", tls_files, connections=4, duration=3.0, warmup=0.5)
        )
    assert open_loop["latency_us"]["percentiles"]["p99"] > 800_000
    assert open_loop["latency_us"]["max"] > 900_000
    assert closed["latency_us"]["max"] > 900_000  # the 4 requests that met the stall...
    assert closed["latency_us"]["percentiles"]["p99"] < 100_000  # ...are lost in the p99
    assert open_loop["error_total"] == closed["error_total"] == 0


# --- counting errors -----------------------------------------------------------------------


class _Resetting(asyncio.Protocol):
    """Answers hello with h11, but aborts (RST) instead of answering every Nth request."""

    every = 4
    requests = 0
    connections = 0

    def connection_made(self, transport: Any) -> None:
        type(self).connections += 1
        self.transport = transport
        self.conn = h11.Connection(h11.SERVER)

    def data_received(self, data: bytes) -> None:
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if type(event) is h11.EndOfMessage:
                cls = type(self)
                cls.requests += 1
                if cls.requests % cls.every == 0:
                    self.transport.abort()
                    return
                self.transport.write(
                    self.conn.send(h11.Response(status_code=200, headers=[("content-length", "2")]))
                    + self.conn.send(h11.Data(data=b"ok"))
                    + self.conn.send(h11.EndOfMessage())
                )
                if self.conn.our_state is h11.MUST_CLOSE:
                    self.transport.close()
                    return
                self.conn.start_next_cycle()
            elif event is h11.NEED_DATA or event is h11.PAUSED:
                return
            elif type(event) is h11.ConnectionClosed:
                self.transport.close()
                return


@contextmanager
def _raw_server(factory: Any, cert: Path, key: Path) -> Iterator[int]:
    """Run a bare asyncio TLS server in a thread; yields its port."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(factory, "127.0.0.1", 0, ssl=server_context(cert, key))
        stop = asyncio.Event()
        holder.update(port=server.sockets[0].getsockname()[1], loop=loop, stop=stop)
        ready.set()
        await stop.wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield holder["port"]
    finally:
        holder["loop"].call_soon_threadsafe(holder["stop"].set)
        thread.join(10)


@pytest.mark.parametrize("new_connection", [False, True], ids=["keep-alive", "new-connection"])
def test_resets_are_counted_exactly(tls_files: TLSFiles, new_connection: bool) -> None:
    _Resetting.requests = _Resetting.connections = 0
    with _raw_server(_Resetting, tls_files.server_cert, tls_files.server_key) as port:
        result = run(
            _settings(
                f"https://localhost:{port}/",
                tls_files,
                connections=3,
                requests=40,
                duration=None,
                warmup=0,
                new_connection=new_connection,
            )
        )
    assert _Resetting.requests == 40
    assert result["requests"] == 40
    assert result["ok"] == 30
    assert result["errors"] == {
        "connect": 0,
        "tls": 0,
        "timeout": 0,
        "reset": 10,
        "protocol": 0,
        "status": 0,
    }
    if new_connection:
        assert _Resetting.connections == 40
        assert result["connects"] == 40
    else:  # one connection per slot, plus one to replace each reset while requests remain
        assert 3 + 10 - 3 <= result["connects"] <= 3 + 10


def test_refused_connections_are_connect_errors(tls_files: TLSFiles) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        result = run(
            _settings(
                f"https://localhost:{port}/",
                tls_files,
                connections=2,
                requests=6,
                duration=None,
                warmup=0,
            )
        )
    assert result["requests"] == 6
    assert result["ok"] == 0
    assert result["errors"]["connect"] == 6
    assert result["error_total"] == 6


def test_untrusted_certificates_are_tls_errors(tls_files: TLSFiles, tmp_path: Path) -> None:
    other = pki.CertificateAuthority.create(tmp_path / "other", name="another CA")
    other.issue(["localhost", "127.0.0.1"]).write(tmp_path / "s.pem", tmp_path / "s.key")
    with _raw_server(_Resetting, tmp_path / "s.pem", tmp_path / "s.key") as port:
        result = run(
            _settings(
                f"https://localhost:{port}/",
                tls_files,
                connections=2,
                requests=5,
                duration=None,
                warmup=0,
            )
        )
    assert result["errors"]["tls"] == 5
    assert result["error_total"] == 5
    assert result["ok"] == 0


def test_status_errors_only_when_asked(tls_files: TLSFiles) -> None:
    async def failing(request: Request) -> Response:
        return Response("no", status=503)

    with serve_in_thread(failing, tls_files) as server:
        plain = run(
            _settings(
                server.url + "/", tls_files, connections=2, requests=10, duration=None, warmup=0
            )
        )
        strict = run(
            _settings(
                server.url + "/",
                tls_files,
                connections=2,
                requests=10,
                duration=None,
                warmup=0,
                fail_status=True,
            )
        )
    assert plain["ok"] == 10
    assert plain["statuses"] == {"503": 10}
    assert plain["error_total"] == 0
    assert strict["ok"] == 0
    assert strict["errors"]["status"] == 10


@pytest.mark.slow
def test_processes_merge_their_results(tls_files: TLSFiles) -> None:
    async def hello(request: Request) -> Response:
        return Response("Hello, world!")

    with serve_in_thread(hello, tls_files, loop="uvloop") as server:
        result = run(
            _settings(
                server.url + "/",
                tls_files,
                connections=4,
                requests=200,
                duration=None,
                warmup=0,
                processes=2,
            )
        )
    assert result["requests"] == 200
    assert result["ok"] == 200
    assert result["latency_us"]["count"] == 200
    assert result["settings"]["processes"] == 2


# --- compare, end to end -------------------------------------------------------------------


@pytest.mark.slow
def _run_benchmark(module: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m benchmarks.MODULE ARGS`` from the repository, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", f"benchmarks.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )


def test_compare_quick_produces_the_table(tmp_path: Path) -> None:
    peers = [
        name
        for name, module in (("uvicorn-h11", "uvicorn"), ("aiohttp", "aiohttp"))
        if importlib.util.find_spec(module)
    ]
    markdown = tmp_path / "compare.md"
    raw = tmp_path / "compare.json"
    proc = _run_benchmark(
        "compare",
        "--quick",
        "--servers",
        ",".join(["ours", *peers]),
        "--scenarios",
        "hello,json",
        "--markdown",
        str(markdown),
        "--json",
        str(raw),
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = markdown.read_text()
    assert "#### hello" in table
    assert "#### json" in table
    assert "| framework | " in table
    assert "| framework, h11 only | " in table
    assert "1.00×" in table
    assert "Memory per idle TLS connection" in table
    for peer, label in (("uvicorn-h11", "uvicorn h11"), ("aiohttp", "aiohttp.web")):
        if peer in peers:
            assert f"| {label} | " in table
    assert table in proc.stdout


def test_asgi_ab_alternates_servers_and_gives_ratios_to_the_first() -> None:
    require_tool("wrk")
    proc = _run_benchmark(
        "asgi_ab", "--rounds", "2", "-d", "1", "adapter=asgi-ours", "native=asgi-native"
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    adapter, native = proc.stdout.splitlines()[1:]
    assert adapter.startswith("adapter ")
    assert native.startswith("native ")
    assert adapter.count("x1.00") == 2  # the first server is the yardstick
    assert " µs/request " in native


def test_compare_with_load_alone_says_where_its_figures_come_from() -> None:
    proc = _run_benchmark(
        "compare", "--quick", "--servers", "bare-h11", "--scenarios", "hello", "--tools",
        "load", "--no-generators", "--memory-connections", "0",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Figures from `framework load` (`load`); wrk was not run." in proc.stdout
    assert "wrk -t1" not in proc.stdout
    assert "| bare h11 ‡ | " in proc.stdout


def test_compare_help_lists_each_server_kind_once() -> None:
    from benchmarks.servers import SERVERS

    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ, PYTHONPATH=str(ROOT), COLUMNS="1000"),
    )
    assert proc.returncode == 0, proc.stderr
    listed = proc.stdout.split("kinds: ", 1)[1].split("\n", 1)[0]
    kinds = [item.split(" (")[0] for item in listed.split(", ")]
    assert kinds == list(dict.fromkeys(s.kind for s in SERVERS))
    assert "ours (4 servers)" in listed


def test_micro_benchmarks_still_run() -> None:
    # Timed only when run on their own; here each runs once, so the file keeps working.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--benchmark-disable",
            str(ROOT / "benchmarks" / "test_micro.py"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "6 passed" in result.stdout


async def _paced(request: Request) -> Response:
    await asyncio.sleep(0.02)  # the server, not either load generator, sets the pace
    return Response("ok")


@pytest.mark.slow
@pytest.mark.tool
def test_wrk_and_load_agree_on_a_server_that_sets_the_pace(tls_files: TLSFiles) -> None:
    require_tool("wrk")
    scenario = Scenario("paced", "/", "20 ms per answer")
    with serve_in_thread(_paced, tls_files) as server:
        wrk = run_wrk(server.url, scenario, seconds=2, connections=16)
        ours = run_ours(server.url, scenario, 2, tls_files.ca_cert, connections=16)
    # 16 connections of ~20 ms each: about 780 answers a second, far below what either does.
    assert 500 < wrk.requests_per_second < 800
    assert wrk.errors == ours.errors == 0
    tolerance = AGREEMENT_TOLERANCE
    assert ours.requests_per_second == pytest.approx(wrk.requests_per_second, rel=tolerance)
    assert ours.p50_us == pytest.approx(wrk.p50_us, rel=tolerance)


class _Counting:
    """Answers ``ok`` and sets ``reached`` once ``target`` requests have been answered."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.count = 0
        self.reached = threading.Event()

    async def __call__(self, request: Request) -> Response:
        self.count += 1
        if self.count >= self.target:
            self.reached.set()
        return Response("ok")


@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_ctrl_c_stops_the_run_and_keeps_the_results(
    tls_files: TLSFiles, tmp_path: Path, processes: int
) -> None:
    handler = _Counting(200)
    out = tmp_path / "result.json"
    plot = tmp_path / "latency.png"
    with serve_in_thread(handler, tls_files) as server:
        load = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "framework.load",
                server.url + "/",
                "--ca",
                str(tls_files.ca_cert),
                "-c",
                "4",
                "-d",
                "120s",
                "-w",
                "0s",
                "-p",
                str(processes),
                "--json",
                str(out),
                *(["--plot", str(plot)] if HAVE_MATPLOTLIB else []),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert handler.reached.wait(60), "the load generator never got going"
            load.send_signal(signal.SIGINT)  # what Ctrl-C sends
            stdout, stderr = load.communicate(timeout=60)
        finally:
            if load.poll() is None:
                load.kill()
                load.wait()
    assert load.returncode == 0, stderr
    assert "interrupted: results so far" in stdout
    assert "Traceback" not in stderr
    result = json.loads(out.read_text())
    assert result["interrupted"] is True
    assert result["ok"] > 0
    assert result["error_total"] == 0
    if HAVE_MATPLOTLIB:  # an optional extra (bench); the chart comes with it
        assert plot.read_bytes().startswith(b"\x89PNG")
