"""The catalogue of malformed and hostile requests, shared by the driver and end-to-end tests.

Each case is raw request bytes and the status the server must answer before closing the
connection, without calling the app. ``H11_ACCEPTS`` names the cases h11 0.16 lets through
on its own (measured by tests/test_http11_checks.py): those are what ``checks.py`` adds.
"""

from __future__ import annotations

HOST = b"Host: localhost\r\n"


def post(*lines: bytes, body: bytes = b"") -> bytes:
    return (
        b"POST /x HTTP/1.1\r\n" + HOST + b"".join(line + b"\r\n" for line in lines) + b"\r\n" + body
    )


def get(*lines: bytes, target: bytes = b"/x", method: bytes = b"GET") -> bytes:
    head = method + b" " + target + b" HTTP/1.1\r\n" + HOST
    return head + b"".join(line + b"\r\n" for line in lines) + b"\r\n"


CHUNKED = b"Transfer-Encoding: chunked"
SECOND = get(target=b"/smuggled")

#: name -> (raw bytes, status)
CASES: dict[str, tuple[bytes, int]] = {
    # Content-Length with Transfer-Encoding, either order, also hiding a second request
    "CL then TE": (post(b"Content-Length: 5", CHUNKED, body=b"0\r\n\r\n"), 400),
    "TE then CL": (post(CHUNKED, b"Content-Length: 5", body=b"0\r\n\r\n"), 400),
    "CL.TE smuggling": (post(b"Content-Length: 6", CHUNKED, body=b"0\r\n\r\n" + SECOND), 400),
    "TE.CL smuggling": (
        post(CHUNKED, b"Content-Length: 4", body=b"5c\r\n" + SECOND + b"\r\n0\r\n\r\n"),
        400,
    ),
    "TE on HTTP/1.0": (
        b"POST /x HTTP/1.0\r\n" + HOST + CHUNKED + b"\r\n\r\n0\r\n\r\n",
        400,
    ),
    "TE not ending in chunked": (post(b"Transfer-Encoding: chunked, gzip", body=b"x"), 400),
    "TE chunked twice (two fields)": (post(CHUNKED, CHUNKED, body=b"0\r\n\r\n"), 400),
    "TE chunked twice (one field)": (
        post(b"Transfer-Encoding: chunked, chunked", body=b"0\r\n\r\n"),
        400,
    ),
    # obs-fold
    "obs-fold with SP": (get(b"X-A: a", b" b"), 400),
    "obs-fold with HTAB": (get(b"X-A: a", b"\tb"), 400),
    "obs-fold hiding TE": (
        post(b"X-A: a", b" Transfer-Encoding: chunked", b"Content-Length: 5", body=b"0\r\n\r\n"),
        400,
    ),
    # bytes that do not belong in a head
    "DEL in a value": (get(b"X-A: a\x7fb"), 400),
    "NUL in a value": (get(b"X-A: a\x00b"), 400),
    "VT in a value": (get(b"X-A: a\x0bb"), 400),
    "bare LF line ends": (b"GET /x HTTP/1.1\nHost: localhost\n\n", 400),
    "bare LF after one line": (b"GET /x HTTP/1.1\r\nHost: localhost\nX-A: b\r\n\r\n", 400),
    "bare CR in a value": (get(b"X-A: a\rb"), 400),
    # names and methods
    "SP in a name": (get(b"X A: b"), 400),
    "SP before the colon": (get(b"X-A : b"), 400),
    "delimiter in a name": (get(b"X(A): b"), 400),
    "empty name": (get(b": b"), 400),
    "line without a colon": (get(b"X-A"), 400),
    "invalid method": (get(method=b"G@T"), 400),
    "method with obs-text": (get(method=b"G\xc3\x89T"), 400),
    # Content-Length
    "two equal Content-Length": (
        post(b"Content-Length: 3", b"Content-Length: 3", body=b"abc"),
        400,
    ),
    "conflicting Content-Length": (
        post(b"Content-Length: 3", b"Content-Length: 4", body=b"abcd"),
        400,
    ),
    "Content-Length list": (post(b"Content-Length: 3, 3", body=b"abc"), 400),
    "Content-Length with a sign": (post(b"Content-Length: +3", body=b"abc"), 400),
    "Content-Length not a number": (post(b"Content-Length: three", body=b"abc"), 400),
    # chunked framing
    "chunk size not hex": (post(CHUNKED, body=b"zz\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk size negative": (post(CHUNKED, body=b"-3\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk size 0x": (post(CHUNKED, body=b"0x3\r\nabc\r\n0\r\n\r\n"), 400),
    "chunk without its CRLF": (post(CHUNKED, body=b"3\r\nabcXX0\r\n\r\n"), 400),
    "chunk lines with bare LF": (post(CHUNKED, body=b"3\nabc\n0\n\n"), 400),
    # Host
    "no Host": (b"GET /x HTTP/1.1\r\n\r\n", 400),
    "two Hosts": (get(b"Host: localhost"), 400),
    "two different Hosts": (get(b"Host: evil.example"), 400),
    "Host with SP and delimiters": (b"GET /x HTTP/1.1\r\nHost: a b/c@d\r\n\r\n", 400),
    "Host with userinfo": (b"GET /x HTTP/1.1\r\nHost: user@localhost\r\n\r\n", 400),
    "Host with a path": (b"GET /x HTTP/1.1\r\nHost: localhost/x\r\n\r\n", 400),
    # sizes
    "request line over 8 KiB": (get(target=b"/" + b"a" * 20_000), 414),
    "150 header fields": (get(*(b"X-%d: a" % i for i in range(150))), 431),
    "head over 16 KiB": (get(b"X-Big: " + b"a" * 20_000), 431),
    # other protocols and methods an origin server does not serve
    "HTTP/2 preface": (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    "HTTP/1.2": (b"GET /x HTTP/1.2\r\n" + HOST + b"\r\n", 505),
    "CONNECT": (b"CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\n\r\n", 405),
    # request targets
    "GET *": (get(target=b"*"), 400),
    "authority-form for GET": (get(target=b"localhost:443"), 400),
    "relative target": (get(target=b"x"), 400),
    "absolute-form, other host": (get(target=b"https://evil.example/x"), 400),
    "absolute-form, other port": (get(target=b"https://localhost:8443/x"), 400),
    "absolute-form, userinfo": (get(target=b"https://u@localhost/x"), 400),
    "absolute-form, other scheme": (get(target=b"ftp://localhost/x"), 400),
    "dot-segments above the root": (get(target=b"/a/../../etc/passwd"), 400),
    "encoded dot-segments above the root": (get(target=b"/%2e%2e/etc/passwd"), 400),
    "encoded slashes and dots above the root": (get(target=b"/a%2f..%2f..%2fetc"), 400),
}

#: The cases h11 alone accepts as a request (and would hand to the app).
H11_ACCEPTS = {
    "CL then TE",
    "TE then CL",
    "CL.TE smuggling",
    "TE.CL smuggling",
    "TE on HTTP/1.0",
    "obs-fold with SP",
    "obs-fold with HTAB",
    "obs-fold hiding TE",
    "DEL in a value",
    "bare LF line ends",
    "bare LF after one line",
    "two equal Content-Length",
    "Content-Length list",
    "chunk lines with bare LF",
    "Host with SP and delimiters",
    "Host with userinfo",
    "Host with a path",
    "request line over 8 KiB",
    "150 header fields",
    "head over 16 KiB",
    "HTTP/2 preface",
    "HTTP/1.2",
    "CONNECT",
    "GET *",
    "authority-form for GET",
    "relative target",
    "absolute-form, other host",
    "absolute-form, other port",
    "absolute-form, userinfo",
    "absolute-form, other scheme",
    "dot-segments above the root",
    "encoded dot-segments above the root",
    "encoded slashes and dots above the root",
}
