"""The access log's batching handler: same text as ``logging`` would write, fewer writes."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from framework import accesslog

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} INFO framework\.access: "
    r'(\S+) - "GET (\S+) HTTP/1\.1" (\d{3}) (\S+) (\S+) (\S+) (\S+) (\S+|"[^"]*")$'
)


class CountingStream(io.StringIO):
    writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


@pytest.fixture
def installed() -> Iterator[CountingStream]:
    logger = logging.getLogger("framework.access")
    saved = (logger.handlers[:], logger.propagate, logger.level)
    stream = CountingStream()
    accesslog.install(stream)
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        logger.handlers[:], logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def test_accesslog_lines_of_one_loop_turn_are_one_write(installed: CountingStream) -> None:
    async def burst() -> int:
        for i in range(50):
            accesslog.log_request(("127.0.0.1", 5000), "GET", f"/item/{i}", "1.1", 200)
        written_before_the_turn = installed.writes
        await asyncio.sleep(0)  # one turn of the loop: the scheduled flush runs
        return written_before_the_turn

    assert asyncio.run(burst()) == 0
    assert installed.writes == 1
    lines = installed.getvalue().splitlines()
    assert [LINE.match(line).group(2) for line in lines] == [f"/item/{i}" for i in range(50)]  # type: ignore[union-attr]


def test_accesslog_fast_path_writes_what_logging_would(installed: CountingStream) -> None:
    accesslog.log_request(("::1", 1), "GET", "/a?b=c", "1.1", 404)  # no loop: written at once
    fast = installed.getvalue()
    installed.seek(0)
    installed.truncate()
    record = logging.LogRecord(
        "framework.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %s',
        ("::1", "GET", "/a?b=c", "1.1", "404 - - - - -"),
        None,
    )
    logging.getLogger("framework.access").handle(record)
    slow = installed.getvalue()
    # The same line but for the time, which moved on between the two.
    assert LINE.match(fast.rstrip("\n"))
    assert LINE.match(slow.rstrip("\n"))
    assert fast.split(" ", 2)[2] == slow.split(" ", 2)[2]
    times = [datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f") for line in (fast, slow)]
    assert timedelta(0) <= times[1] - times[0] < timedelta(seconds=5)


def test_accesslog_other_handlers_get_ordinary_records(installed: CountingStream) -> None:
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logging.getLogger("framework.access").handlers[:] = [Collect()]  # any other setup
    accesslog.log_request(None, "GET", "/", "1.0", 200)
    assert [r.getMessage() for r in records] == ['- - "GET / HTTP/1.0" 200 - - - - -']
    assert records[0].access["status"] == 200  # type: ignore[attr-defined]  # the fields too
    assert installed.getvalue() == ""


def test_accesslog_silent_above_info(installed: CountingStream) -> None:
    logging.getLogger("framework.access").setLevel(logging.WARNING)
    accesslog.log_request(("127.0.0.1", 1), "GET", "/", "1.1", 200)
    assert installed.getvalue() == ""


def test_accesslog_json_line_is_what_json_dumps_would_write() -> None:
    # The line is written directly, without json.dumps; it must parse back to the fields.
    connection = accesslog.ConnectionFields("TLSv1.3", "h\u00f6st.test", 'CN=a"b\\c\n,O=\u00e9')
    hostile = 'GET /\x00"\\\u2028\u00ff' + "x" * 2000
    cases = [
        ("203.0.113.9", "GET", "/a?b=c", "1.1", 200, 149, 0.000342, connection),
        (None, None, None, None, 400, None, None, accesslog.PLAIN),
        ("::1", "POST", hostile, "1.0", 500, 0, 12.5, connection),
    ]
    for args in cases:
        line = accesslog._json_line(*args)
        assert line.isascii()
        assert "\n" not in line
        parsed = json.loads(line)
        expected = accesslog._fields(*args)
        assert parsed.pop("time")[:10] == expected.pop("time")[:10]
        assert parsed == expected
