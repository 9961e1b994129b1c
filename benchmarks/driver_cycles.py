"""Driver cycles for instruction counts: ``python -m benchmarks.driver_cycles ROLE PLAIN N``.

ROLE is ``server`` or ``client``, PLAIN ``1`` (the plain path) or ``0`` (h11 reads every
message), N the number of keep-alive cycles (the messages of benchmarks/test_micro.py). Under
``valgrind --tool=callgrind`` the instructions of N cycles less those of 0 cycles, divided by
N, are one cycle's: a count that repeats exactly, unlike wall-clock time on a shared machine
(benchmarks/README.md, Micro-benchmarks).
"""

from __future__ import annotations

import sys

from benchmarks.test_micro import BODY, HEADERS, REQUEST, RESPONSE
from framework.http11 import Driver, Request, Response, prepare

role, plain, n = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
d = Driver(role, plain=plain)
if role == "server":
    for _ in range(n):
        d.receive_data(REQUEST)
        d.next_event()
        d.next_event()
        d.send_whole(Response(200, HEADERS), BODY)
        d.start_next_cycle()
else:
    req = prepare(Request(b"GET", b"/users/42", [(b"host", b"localhost:8443")]))
    for _ in range(n):
        d.record_sent(req)
        d.receive_data(RESPONSE)
        d.next_event()
        d.next_event()
        d.next_event()
        d.start_next_cycle()
