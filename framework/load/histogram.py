"""A high-dynamic-range latency histogram: log-linear buckets of integer microseconds.

Like HdrHistogram, values below ``2**bits`` µs get one bucket each, and every power of two
above that is split into ``2**(bits-1)`` equal buckets, so any recorded value is known to
within ``1 / 2**(bits-1)`` of itself (0.4 % with the default 9 bits) from 1 µs up to an hour,
in a few thousand counters. Histograms with the same ``bits`` merge by adding counters, which
is how the results of several load processes are combined, and they round-trip through JSON.
This module knows nothing of HTTP or asyncio.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["Histogram", "PERCENTILES"]

#: The percentiles every report shows.
PERCENTILES = (50.0, 90.0, 99.0, 99.9)

#: Largest value kept apart from ``max``: one hour in microseconds. Larger values are counted
#: in the top bucket (and still set ``max`` exactly).
HIGHEST_US = 3600 * 1_000_000


class Histogram:
    """Counts of latencies in microseconds, with exact count, min, max and mean.

    Args:
        bits: sub-bucket resolution; the relative error of a reported value is at most
            ``1 / 2**(bits-1)``.

    Example::

        h = Histogram()
        h.record(1234)           # 1.234 ms
        h.percentile(99.0)       # -> about 1234
    """

    __slots__ = ("bits", "_half", "_size", "counts", "count", "min", "max", "total")

    def __init__(self, bits: int = 9) -> None:
        if not 2 <= bits <= 16:
            raise ValueError(f"bits must be between 2 and 16, not {bits}")
        self.bits = bits
        self._size = 1 << bits
        self._half = self._size >> 1
        self.counts = [0] * (self.index(HIGHEST_US) + 1)
        self.count = 0
        self.min = 0
        self.max = 0
        self.total = 0

    # --- buckets ----------------------------------------------------------------------------

    def index(self, value: int) -> int:
        """The bucket holding ``value`` (µs, clamped to 0..HIGHEST_US)."""
        if value < self._size:
            return value if value > 0 else 0
        if value > HIGHEST_US:
            value = HIGHEST_US
        shift = value.bit_length() - self.bits
        return (shift + 1) * self._half + (value >> shift) - self._half

    def lowest(self, index: int) -> int:
        """The smallest value that falls in bucket ``index``."""
        if index < self._size:
            return index
        shift, offset = divmod(index - self._size, self._half)
        return (offset + self._half) << (shift + 1)

    def highest(self, index: int) -> int:
        """The largest value that falls in bucket ``index``."""
        if index < self._size:
            return index
        shift = (index - self._size) // self._half + 1
        return self.lowest(index) + (1 << shift) - 1

    # --- recording --------------------------------------------------------------------------

    def record(self, value: int) -> None:
        """Count one latency of ``value`` microseconds."""
        if value < 0:
            value = 0
        self.counts[self.index(value)] += 1
        if self.count == 0 or value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        self.count += 1
        self.total += value

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this one (same ``bits``)."""
        if other.bits != self.bits:
            raise ValueError(
                f"cannot merge a {other.bits}-bit histogram into a {self.bits}-bit one"
            )
        if other.count == 0:
            return
        counts = self.counts
        for i, n in enumerate(other.counts):
            if n:
                counts[i] += n
        self.min = other.min if self.count == 0 else min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.count += other.count
        self.total += other.total

    def reset(self) -> None:
        """Forget everything recorded (after a warm-up)."""
        self.counts = [0] * len(self.counts)
        self.count = self.min = self.max = self.total = 0

    def copy(self) -> Histogram:
        """An independent copy."""
        h = Histogram(self.bits)
        h.merge(self)
        return h

    # --- reading ----------------------------------------------------------------------------

    @property
    def mean(self) -> float:
        """The exact mean in µs (0 when empty)."""
        return self.total / self.count if self.count else 0.0

    def percentile(self, p: float) -> int:
        """The value at or below which ``p`` percent of the recorded values lie, in µs.

        Reported as the middle of its bucket (clamped to the exact min and max), so the error
        is at most half a bucket. 0 when empty.
        """
        if not 0.0 <= p <= 100.0:
            raise ValueError(f"percentile must be within 0-100, not {p}")
        if self.count == 0:
            return 0
        if p >= 100.0:
            return self.max
        # The rank of the value, 1-based, rounded up as HdrHistogram does.
        rank = max(1, -(-int(p * self.count * 1000) // 100_000))
        seen = 0
        for i, n in enumerate(self.counts):
            if n:
                seen += n
                if seen >= rank:
                    middle = (self.lowest(i) + self.highest(i)) // 2
                    return min(max(middle, self.min), self.max)
        return self.max  # pragma: no cover - the ranks always reach count

    def percentiles(self, ps: Iterable[float] = PERCENTILES) -> dict[str, int]:
        """``{"p50": µs, ...}`` for each of ``ps``."""
        return {_label(p): self.percentile(p) for p in ps}

    def buckets(self) -> Iterator[tuple[int, int, int]]:
        """Non-empty buckets as ``(lowest µs, highest µs, count)``."""
        for i, n in enumerate(self.counts):
            if n:
                yield self.lowest(i), self.highest(i), n

    def percentile_curve(self, points_per_decade: int = 20) -> list[tuple[float, int]]:
        """(percentile, µs) pairs spaced evenly in ``1 / (1 - p)``, for a percentile chart."""
        out: list[tuple[float, int]] = []
        if self.count == 0:
            return out
        decades = 0.0
        limit = 1.0 - 1.0 / self.count
        while True:
            p = 1.0 - 10.0 ** (-decades)
            if p > limit:
                break
            out.append((p * 100.0, self.percentile(p * 100.0)))
            decades += 1.0 / points_per_decade
        out.append((100.0, self.max))
        return out

    # --- serializing ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict: settings, summary and the non-empty buckets."""
        return {
            "unit": "us",
            "bits": self.bits,
            "count": self.count,
            "min": self.min,
            "max": self.max,
            "total": self.total,
            "mean": round(self.mean, 1),
            "percentiles": self.percentiles(),
            # [bucket index, lowest µs, count]: the index alone rebuilds it, the value reads.
            "buckets": [[i, self.lowest(i), n] for i, n in enumerate(self.counts) if n],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Histogram:
        """Rebuild a histogram written by ``to_json``."""
        h = cls(int(data["bits"]))
        for i, _, n in data["buckets"]:
            h.counts[int(i)] += int(n)
        h.count = int(data["count"])
        h.min = int(data["min"])
        h.max = int(data["max"])
        h.total = int(data["total"])
        return h

    def __repr__(self) -> str:
        if not self.count:
            return "<Histogram empty>"
        return (
            f"<Histogram count={self.count} p50={self.percentile(50)}us "
            f"p99={self.percentile(99)}us max={self.max}us>"
        )


def _label(p: float) -> str:
    return "p" + (f"{p:g}".replace(".", "_") if p != int(p) else str(int(p)))
