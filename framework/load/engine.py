"""The load engine: connections that send one request after another and time the answers.

One asyncio ``Protocol`` per connection, over the loop's TLS transport, with the package's
client-role ``Driver`` parsing every response. The request never changes during a run, so its
bytes are encoded once (by h11, on a scratch connection) and each connection's driver is only
told that it was sent. ``Engine`` runs one process's share of a run: closed loop (each
connection sends its next request as soon as the previous answer is in) or open loop (each
connection sends on a fixed schedule and latency counts from when a request was *due*, so a
stalled server cannot hide behind requests that were never sent). It knows nothing of
terminals, files or other processes: ``runner.py`` does that.

A run whose first second brings no answer at all and only one kind of failure stops there
(``Stats.stopped``): a wrong CA or a server that is not listening would otherwise be measured
as a rate of failures for the whole duration.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections import Counter
from typing import Any

from ..errors import ProtocolError
from ..http11 import NEED_DATA, ConnectionClosed, Driver, EndOfMessage, Response
from .failures import connect_failure, tls_failure
from .settings import Settings, Stats, Target

__all__ = ["Engine"]

_perf_ns = time.perf_counter_ns

#: How long a run goes on when nothing is answered and everything fails the same way.
FIRST_SECOND = 1.0

_RESET = "the server closed the connection before the answer was complete"


class _Connection(asyncio.Protocol):
    """One connection of the load: sends the run's request, parses answers with the driver."""

    __slots__ = (
        "engine",
        "transport",
        "driver",
        "due",
        "sent",
        "status",
        "busy",
        "failed",
        "lost",
        "slot",
    )

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.transport: asyncio.Transport | None = None
        self.driver = Driver("client")
        self.due = 0  # ns: when the request in flight was due (latency counts from here)
        self.sent = 0  # ns: when it was written (timeouts count from here)
        self.status = 0
        self.busy = False
        self.failed = False  # an error was counted for the request in flight
        self.lost: asyncio.Future[None] = engine.loop.create_future()
        self.slot: _Slot | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, due: int) -> None:
        engine = self.engine
        self.due = due
        self.sent = _perf_ns()
        self.busy = True
        self.failed = False
        # Only the state machine hears of the request: its bytes were encoded once.
        self.driver.record_sent(engine.target.request)
        self.transport.write(engine.request_bytes)  # type: ignore[union-attr]
        engine.stats.bytes_out += engine.request_size

    def data_received(self, data: bytes) -> None:
        self.engine.stats.bytes_in += len(data)
        driver = self.driver
        try:
            driver.receive_data(data)
            while True:
                event = driver.next_event()
                if event is NEED_DATA:
                    return
                kind = type(event)
                if kind is Response:
                    # type() rather than isinstance(): this runs for every answer of the run
                    self.status = event.status_code  # type: ignore[union-attr]
                elif kind is EndOfMessage:
                    self.busy = False
                    self.engine.answered(self, _perf_ns())
                    return
                elif kind is ConnectionClosed:
                    break
        except ProtocolError as exc:
            self.fail("protocol", f"the answer was not valid HTTP/1.1: {exc}")
            return
        if self.busy:
            self.fail("reset", _RESET)

    def eof_received(self) -> bool | None:
        if self.busy:
            self.fail("reset", _RESET)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.busy:
            self.fail("reset", _RESET)
        if not self.lost.done():
            self.lost.set_result(None)
        self.engine.lost(self)

    def fail(self, kind: str, message: str) -> None:
        """Count the request in flight as failed (once) and drop the connection."""
        if self.busy and not self.failed:
            self.failed = True
            self.busy = False
            self.engine.failed(kind, message)
        if self.transport is not None:
            self.transport.abort()


class Engine:
    """Runs one process's share of a load test on the running loop.

    Args:
        settings: this process's share (``Settings.share``).
        target: the parsed URL, TLS context and request bytes.
    """

    def __init__(self, settings: Settings, target: Target) -> None:
        self.settings = settings
        self.target = target
        self.request_bytes = target.request_bytes
        self.request_size = len(target.request_bytes)
        self.loop = asyncio.get_running_loop()
        self.stats = Stats()
        self.measuring = settings.warmup <= 0
        self.sending = True
        self.remaining = settings.requests if settings.requests is not None else -1
        self.interval_ns = int(settings.connections / settings.rate * 1e9) if settings.rate else 0
        self.connections: set[_Connection] = set()
        self.in_flight = 0
        self._idle: asyncio.Event = asyncio.Event()
        self._slots: list[_Slot] = []
        self._stop: asyncio.Future[None] = self.loop.create_future()
        self._hurry = False
        # Over the whole run, warm-up included: the first-second check and the report.
        self.answers = 0
        self.failures: Counter[str] = Counter()
        self.first_errors: dict[str, str] = {}
        self.stopped: dict[str, Any] | None = None

    # --- the run ------------------------------------------------------------------------------

    async def run(self) -> Stats:
        """Warm up, measure until the duration or count is reached or ``stop()``, then drain."""
        settings = self.settings
        if settings.connections < 1:
            self.stats.end()
            return self.stats
        start = _perf_ns()
        step = self.interval_ns // max(1, settings.connections)
        self._slots = [_Slot(self, start + i * step) for i in range(settings.connections)]
        self._sweeper = self.loop.call_later(self._sweep_every(), self._sweep)
        first_second = self.loop.call_later(FIRST_SECOND, self._check_first_second)
        for slot in self._slots:
            slot.next()
        try:
            if not self.measuring:
                await self._wait(settings.warmup)
                self._begin_measuring()
            if settings.duration is not None:
                await self._wait(settings.duration)
            else:
                await asyncio.shield(self._stop)
        finally:
            self.sending = False
            self.stats.end()
            self._count_unsent()
            self._sweeper.cancel()
            first_second.cancel()
            await self._drain()
        self.stats.first_errors = dict(self.first_errors)
        self.stats.stopped = self.stopped
        return self.stats

    def _check_first_second(self) -> None:
        """Stop when nothing was answered and every request failed the same way."""
        if self.answers or len(self.failures) != 1:
            return
        ((kind, count),) = self.failures.items()
        self.stopped = {
            "kind": kind,
            "count": count,
            "after": FIRST_SECOND,
            "message": self.first_errors[kind],
        }
        self.stop()

    def _count_unsent(self) -> None:
        """Open loop: requests due before the end that no connection was free to send.

        They are not in the histogram (they have no answer), but they are the sign of a server
        that had fallen behind when the run ended, so the report says how many there were.
        """
        if not self.interval_ns or not self.measuring:
            return
        now = _perf_ns()
        for slot in self._slots:
            if slot.due <= now:
                self.stats.unsent += (now - slot.due) // self.interval_ns + 1

    def stop(self) -> None:
        """Stop sending now (Ctrl-C); answers in flight are not waited for."""
        self.sending = False
        self._hurry = True
        if not self._stop.done():
            self._stop.set_result(None)

    async def _wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(self._stop), seconds)
        except TimeoutError:
            pass

    def _begin_measuring(self) -> None:
        self.stats = Stats()
        self.measuring = True

    async def _drain(self) -> None:
        """Let answers in flight arrive (up to the timeout), then close every connection."""
        if not self._hurry and self.in_flight:
            self._idle.clear()
            try:
                await asyncio.wait_for(self._idle.wait(), self.settings.timeout)
            except TimeoutError:
                pass
        self._hurry = True
        for slot in self._slots:
            slot.cancel()
        for conn in list(self.connections):
            if conn.busy:
                conn.busy = False
                self.stats.unfinished += 1
            if conn.transport is not None:
                conn.transport.close()
        waiters = [c.lost for c in self.connections]
        tasks = [s.task for s in self._slots if s.task is not None]
        if waiters or tasks:
            await asyncio.wait([*waiters, *tasks], timeout=5)
            for t in tasks:
                t.cancel()
            for c in list(self.connections):
                if c.transport is not None:
                    c.transport.abort()

    # --- events from connections ---------------------------------------------------------------

    def answered(self, conn: _Connection, now: int) -> None:
        """A connection has a complete answer at ``now`` (ns): count it, send the next."""
        stats = self.stats
        self.in_flight -= 1
        self.answers += 1
        status = conn.status
        statuses = stats.statuses
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500 and self.settings.fail_status:
            stats.errors["status"] += 1
            self.first_errors.setdefault("status", f"the server answered {status}")
        else:
            stats.ok += 1
        stats.histogram.record((now - conn.due) // 1000)
        slot = conn.slot
        assert slot is not None
        driver = conn.driver
        if driver.is_reusable and not self.settings.new_connection:
            driver.start_next_cycle()
            slot.next()
        else:
            conn.slot = None
            slot.conn = None
            if conn.transport is not None:
                conn.transport.close()
            slot.next()
        if self.in_flight == 0 and not self.sending:
            self._idle.set()

    def failed(self, kind: str, message: str) -> None:
        """A request failed: count it under ``kind``, keep the first ``message`` of each."""
        self.in_flight -= 1
        self.stats.errors[kind] += 1
        self.failures[kind] += 1
        self.first_errors.setdefault(kind, message)
        if self.in_flight == 0 and not self.sending:
            self._idle.set()

    def lost(self, conn: _Connection) -> None:
        """A connection is gone: its slot reconnects for the next request."""
        self.connections.discard(conn)
        slot = conn.slot
        if slot is not None and slot.conn is conn:
            slot.conn = None
            slot.next()

    def take(self) -> bool:
        """Claim one request of the run's count; False when sending is over."""
        if not self.sending:
            return False
        if self.measuring and self.remaining >= 0:
            # -n counts measured requests only; warm-up requests are extra.
            if self.remaining == 0:
                return False
            self.remaining -= 1
        self.in_flight += 1
        return True

    def finish_if_done(self) -> None:
        """End the run once the count (``-n``) is reached and nothing is in flight."""
        if self.measuring and self.remaining == 0 and self.in_flight == 0 and not self._stop.done():
            self._stop.set_result(None)

    # --- timeouts -----------------------------------------------------------------------------

    @property
    def _timed_out(self) -> str:
        return f"no complete answer within {self.settings.timeout:g} s (-t/--timeout)"

    def _sweep_every(self) -> float:
        return min(0.1, self.settings.timeout / 10)

    def _sweep(self) -> None:
        limit = _perf_ns() - int(self.settings.timeout * 1e9)
        for conn in list(self.connections):
            if conn.busy and conn.sent < limit:
                conn.fail("timeout", self._timed_out)
        for slot in self._slots:
            if slot.connecting_since and slot.connecting_since < limit and slot.task:
                slot.task.cancel()
        self._sweeper = self.loop.call_later(self._sweep_every(), self._sweep)


class _Slot:
    """One of the run's C connections, through reconnects: decides when its next request goes."""

    __slots__ = ("engine", "conn", "due", "timer", "task", "connecting_since", "_connect_due")

    def __init__(self, engine: Engine, first_due: int) -> None:
        self.engine = engine
        self.conn: _Connection | None = None
        self.due = first_due
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.connecting_since = 0
        self._connect_due = 0

    def next(self) -> None:
        """Send the next request now, or when it is due (open loop), connecting if needed."""
        engine = self.engine
        if self.task is not None or self.timer is not None or engine._hurry:
            engine.finish_if_done()
            return
        now = _perf_ns()
        if engine.interval_ns:
            if self.due > now:
                self.timer = engine.loop.call_later((self.due - now) / 1e9, self._on_timer)
                return
            due = self.due
        else:
            due = now
        if not engine.take():
            engine.finish_if_done()
            return
        if engine.interval_ns:
            self.due += engine.interval_ns
        conn = self.conn
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.send(due)
        else:
            self.task = engine.loop.create_task(self._connect_and_send(due))

    def _on_timer(self) -> None:
        self.timer = None
        self.next()

    async def _connect_and_send(self, due: int) -> None:
        engine = self.engine
        target = engine.target
        self.connecting_since = _perf_ns()
        # With --new-connection the latency includes connecting; otherwise it starts when
        # the request is written, as wrk counts it.
        count_from = due if engine.settings.new_connection or engine.interval_ns else None
        kind = "connect"
        sock = None
        try:
            sock = socket.socket(
                socket.AF_INET6 if ":" in target.host else socket.AF_INET, socket.SOCK_STREAM
            )
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            await engine.loop.sock_connect(sock, (target.host, target.port))
            kind = "tls"
            _, conn = await engine.loop.create_connection(
                lambda: _Connection(engine),
                sock=sock,
                ssl=target.ssl_context,
                server_hostname=target.server_hostname,
                ssl_handshake_timeout=engine.settings.timeout if target.is_tls else None,
            )
            sock = None
        except asyncio.CancelledError:
            if sock is not None:
                sock.close()
            self.task = None
            if engine._hurry:
                engine.in_flight -= 1
                engine.stats.unfinished += 1
                return
            engine.failed("timeout", self._connect_timed_out())
            self._retry()
            return
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            if sock is not None:
                sock.close()
            self.task = None
            if isinstance(exc, TimeoutError):
                engine.failed("timeout", self._connect_timed_out())
            elif kind == "connect":
                engine.failed(kind, connect_failure(exc, target.host, target.port))
            else:
                engine.failed(kind, tls_failure(exc, target.host, target.port))
            self._retry()
            return
        finally:
            self.connecting_since = 0
        self.task = None
        engine.stats.connects += 1
        engine.connections.add(conn)
        conn.slot = self
        self.conn = conn
        if engine._hurry:
            engine.in_flight -= 1
            engine.stats.unfinished += 1
            conn.transport.close()  # type: ignore[union-attr]
            return
        conn.send(count_from if count_from is not None else _perf_ns())

    def _connect_timed_out(self) -> str:
        target = self.engine.target
        return (
            f"connecting to {target.host}:{target.port} took longer than "
            f"{self.engine.settings.timeout:g} s (-t/--timeout)"
        )

    def _retry(self) -> None:
        """After a failed connect: try again, pausing a little so a dead server is not hammered."""
        engine = self.engine
        if engine._hurry or not engine.sending:
            engine.finish_if_done()
            if engine.in_flight == 0 and not engine.sending:
                engine._idle.set()
            return
        self.timer = engine.loop.call_later(0.01, self._on_timer)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None:
            self.task.cancel()
