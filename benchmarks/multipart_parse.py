"""Our multipart parser against python-multipart: ``python -m benchmarks.multipart_parse``.

Both parse the same bodies fed in 64 KiB pieces (what the server hands over): one 50 MiB
file, 1,000 small fields, and a 1 MiB file fed in 1 KiB pieces. Each is timed as the best of
three runs; the output is each body's time for both and their ratio, measured in the same run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import python_multipart

from framework.multipart import MultipartParser, PartData

BOUNDARY = b"----benchBoundary7MA4YWxkTrZu0gW"


def body(parts: list[tuple[bytes, bytes | None, bytes]]) -> bytes:
    out = bytearray()
    for name, filename, data in parts:
        out += b"--" + BOUNDARY + b"\r\n"
        out += b'Content-Disposition: form-data; name="' + name + b'"'
        if filename is not None:
            out += b'; filename="' + filename + b'"\r\nContent-Type: application/octet-stream'
        out += b"\r\n\r\n" + data + b"\r\n"
    return bytes(out + b"--" + BOUNDARY + b"--\r\n")


def ours(data: bytes, piece: int) -> int:
    parser = MultipartParser(BOUNDARY)
    size = 0
    for i in range(0, len(data), piece):
        for event in parser.feed(data[i : i + piece]):
            if isinstance(event, PartData):
                size += len(event.data)
    parser.close()
    return size


def theirs(data: bytes, piece: int) -> int:
    size = 0

    def on_part_data(buf: bytes, start: int, end: int) -> None:
        nonlocal size
        size += end - start

    parser = python_multipart.MultipartParser(BOUNDARY, {"on_part_data": on_part_data})
    for i in range(0, len(data), piece):
        parser.write(data[i : i + piece])
    parser.finalize()
    return size


def best(func: Callable[[bytes, int], int], data: bytes, piece: int) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(3):
        start = time.perf_counter()
        size = func(data, piece)
        times.append(time.perf_counter() - start)
    return min(times), size


def main() -> None:
    cases = {
        "one 50 MiB file, 64 KiB pieces": (body([(b"f", b"a.bin", os.urandom(50 << 20))]), 65536),
        "1,000 fields, 64 KiB pieces": (
            body([(b"field%d" % i, None, b"value %d" % i) for i in range(1000)]),
            65536,
        ),
        "1 MiB file, 1 KiB pieces": (body([(b"f", b"a.bin", os.urandom(1 << 20))]), 1024),
    }
    print(f"python-multipart {python_multipart.__version__}")
    for label, (data, piece) in cases.items():
        mine, size_a = best(ours, data, piece)
        other, size_b = best(theirs, data, piece)
        assert size_a == size_b, (size_a, size_b)
        print(
            f"{label:34} ours {mine * 1000:8.1f} ms  python-multipart {other * 1000:8.1f} ms"
            f"  ours/theirs {mine / other:5.2f}"
        )


if __name__ == "__main__":
    main()
