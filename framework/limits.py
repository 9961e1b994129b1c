"""Every limit, timeout and policy default in one place, each with its precedent.

Values only: nothing here does I/O or imports another module of the package. The README's
table of limits is made from this file (``python -m framework limits`` prints it).
"""

from __future__ import annotations

# --- server: HTTP/1.1 sizes -------------------------------------------------------------------

#: Largest request line plus headers, in bytes. Above it the server answers 431.
#: Precedent: h11's DEFAULT_MAX_INCOMPLETE_EVENT_SIZE (16 KiB); nginx's large_client_header_buffers
#: is 4 x 8 KiB, uvicorn takes h11's default.
MAX_HEADER_BYTES = 16 * 1024

#: Longest request line (method, target, version), in bytes. Above it the server answers 414.
#: Precedent: nginx's large_client_header_buffers (8 KiB per line); RFC 9112 3 recommends
#: supporting at least 8,000 octets.
MAX_REQUEST_LINE_BYTES = 8 * 1024

#: Most header fields in a request. Above it the server answers 431.
#: Precedent: Apache LimitRequestFields 100; Node.js maxHeadersCount 2,000 is generous.
MAX_HEADER_COUNT = 100

#: Largest request body the server buffers for ``await request.body()``, in bytes; 413 above it
#: (per route overridable). Precedent: nginx client_max_body_size is 1 MiB; Starlette and uvicorn
#: have none.
MAX_BODY_BYTES = 1024 * 1024

#: Largest request body read with ``request.stream()``, in bytes; 413 above it (``None`` in the
#: config, ``unlimited`` on the command line: no limit). Precedent: Caddy's request_body
#: max_size is unset; a streamed upload still needs a ceiling on the internet, and 1 GiB
#: covers ordinary uploads.
MAX_STREAM_BODY_BYTES = 1024 * 1024 * 1024

#: Received bytes buffered for a request body that the handler has not read yet; reading from the
#: socket pauses above it (read backpressure). Precedent: asyncio's StreamReader limit is 64 KiB.
READ_HIGH_WATER = 64 * 1024

#: Bytes queued in the transport before the writer waits for it to drain (write backpressure).
#: Precedent: asyncio's default write high-water mark is 64 KiB.
WRITE_HIGH_WATER = 64 * 1024

#: Size of the pieces a file response is read and sent in. Precedent: Starlette's FileResponse
#: uses 64 KiB chunks.
FILE_CHUNK_BYTES = 64 * 1024

#: Most ranges one ``Range`` header may ask of a file, after overlapping and adjacent ones are
#: merged; more and the whole file is sent (200). Precedent: Apache's MaxRanges is 200, its
#: answer to CVE-2011-3192 (many overlapping ranges of one large file).
MAX_RANGES = 200

#: Size of the pieces a large in-memory response body is written in, waiting for the client
#: between them, so that its encrypted copy never waits in memory whole. Precedent: nginx's
#: sendfile_max_chunk is 2 MiB. Pieces of 64 KiB cost 1.4x the CPU of one write for a 1 MiB body.
WRITE_CHUNK_BYTES = 1024 * 1024

# --- server: timeouts, in seconds ------------------------------------------------------------

#: How long an idle kept-alive connection stays open. Precedent: uvicorn 5 s, nginx 75 s,
#: Node.js 5 s. Short values save memory under many idle clients. Behind a load balancer that
#: keeps connections to us, its idle timeout must be the shorter one, or it sends a request
#: just as we close and answers its client 502: AWS ALB idles 60 s, so set 65 s behind one.
KEEP_ALIVE_TIMEOUT = 5.0

#: How long the TLS handshake may take. Precedent: Go's net/http TLSHandshakeTimeout 10 s;
#: nginx's ssl_handshake_timeout 60 s keeps stalled handshakes (and their memory) for a minute.
TLS_HANDSHAKE_TIMEOUT = 10.0

#: How long a request's head may take to arrive once its first byte has (slowloris).
#: Precedent: Node.js headersTimeout 60 s; Apache mod_reqtimeout header=20-40.
REQUEST_HEAD_TIMEOUT = 30.0

#: Longest silence while a request body is being received; 408 and a close after it.
#: Precedent: nginx client_body_timeout 60 s; Apache mod_reqtimeout body=20.
BODY_TIMEOUT = 30.0

#: Longest a whole request (head and body) may take to arrive; ``None``: no such deadline.
#: Precedent: Go's ReadTimeout (unset by default); nginx has none.
REQUEST_TIMEOUT: float | None = None

#: Longest a response write may wait for a client that does not read; then the connection is
#: dropped. Precedent: nginx send_timeout 60 s; Go WriteTimeout unset.
WRITE_TIMEOUT = 30.0

#: Most open connections per worker; above it the server stops accepting until one closes.
#: Precedent: nginx worker_connections 512-1024 (per worker, commonly raised); uvicorn
#: --limit-concurrency unset. 4,096 fits the common file-descriptor limit once raised.
MAX_CONNECTIONS = 4096

#: Most requests handled at once per worker; above it the server answers 503 with
#: ``Retry-After``. ``None``: no limit. Precedent: uvicorn --limit-concurrency (unset).
MAX_IN_FLIGHT: int | None = None

#: Seconds sent in ``Retry-After`` with a 503 for too many requests in flight. Precedent:
#: RFC 9110 10.2.3; a second spreads retries without making clients wait long.
RETRY_AFTER = 1

#: Requests served on one connection before it is closed (``Connection: close`` on the last).
#: Precedent: nginx keepalive_requests 1,000 (since 1.19.10); Apache MaxKeepAliveRequests 100.
MAX_REQUESTS_PER_CONNECTION = 1000

#: On SIGINT/SIGTERM, how long in-flight requests may run before connections are closed.
#: Precedent: uvicorn --timeout-graceful-shutdown (none by default); Kubernetes gives 30 s
#: before SIGKILL, so we finish well inside it.
GRACEFUL_SHUTDOWN_TIMEOUT = 10.0

#: On SIGINT/SIGTERM, how long an idle kept-alive connection whose last response has just gone
#: out stays open for the request its client may already have sent (answered with
#: ``Connection: close``); closing it at once would drop that request unanswered. Precedent:
#: Go's http.Server.Shutdown waits for new connections' first request; a load generator sends
#: its next request within a millisecond of the last answer on loopback.
DRAIN_IDLE_GRACE = 0.25

#: On SIGINT/SIGTERM, once every connection has its last answer and is closing, how long to
#: wait for the clients to close their side (having read everything) before stopping anyway.
#: Precedent: Apache's lingering close waits 2 s; a client that does not read for a second
#: while the server says goodbye is stalled.
DRAIN_LINGER = 1.0

#: Most connections accepted but not yet served. Precedent: uvicorn --backlog 2048.
BACKLOG = 2048

#: Longest request target an access-log line carries, in characters; past it the target is cut
#: and marked. Precedent: nginx logs the whole line (up to its 8 KiB buffer); a log line past
#: 1 KiB is an attack or a mistake, not something to keep whole.
ACCESS_LOG_TARGET_CHARS = 1024
#: Longest client-certificate subject an access-log line carries, in characters (cut and
#: marked past it): a subject is the peer's choice, like the target.
ACCESS_LOG_FIELD_CHARS = 256

# --- WebSocket -------------------------------------------------------------------------------

#: Largest WebSocket message accepted (all its fragments together); a larger one closes the
#: connection with 1009. Precedent: Sanic 1 MiB; uvicorn and hypercorn 16 MiB. With
#: ``WS_QUEUE_MESSAGES`` it bounds what one slow handler can hold: 16 x 1 MiB, where 16 MiB
#: messages would allow 256 MiB per connection.
WS_MAX_MESSAGE_BYTES = 1024 * 1024

#: Received messages queued for the handler before reading from the peer pauses. Precedent:
#: the ``websockets`` library's max_queue 16; uvicorn 32.
WS_QUEUE_MESSAGES = 16

#: Seconds between keep-alive pings (none: no pings). Precedent: uvicorn --ws-ping-interval
#: 20, the ``websockets`` library 20.
WS_PING_INTERVAL = 20.0

#: Seconds a pong may take before the connection is closed (1011). Precedent: uvicorn
#: --ws-ping-timeout 20, the ``websockets`` library 20.
WS_PING_TIMEOUT = 20.0

#: Seconds to wait for the peer's close frame after ours before dropping the connection.
#: Precedent: the ``websockets`` library's close_timeout 10 s.
WS_CLOSE_TIMEOUT = 10.0

# --- client ----------------------------------------------------------------------------------

#: Connect (TCP + TLS handshake). Precedent: httpx 5 s for every phase.
CLIENT_CONNECT_TIMEOUT = 5.0
#: Longest silence while reading a response. Precedent: httpx 5 s; aiohttp's sock_read none.
CLIENT_READ_TIMEOUT = 30.0
#: Longest wait for the connection to accept more request bytes. Precedent: httpx 5 s.
CLIENT_WRITE_TIMEOUT = 30.0
#: Longest wait for a free pooled connection. Precedent: httpx 5 s.
CLIENT_POOL_TIMEOUT = 10.0
#: Connections a client keeps open in total. Precedent: httpx and aiohttp 100.
CLIENT_MAX_CONNECTIONS = 100
#: Connections a client keeps open to one origin. Precedent: aiohttp unlimited per host,
#: browsers 6; a client used for load tests wants them all on one host.
CLIENT_MAX_CONNECTIONS_PER_HOST = 100
#: Idle connections are dropped after this, before servers usually close them (uvicorn and
#: Node.js close after 5 s). Precedent: httpx keepalive_expiry 5 s; aiohttp 15 s.
CLIENT_KEEP_ALIVE_EXPIRY = 4.0
#: Subtracted from a server's ``Keep-Alive: timeout=N`` hint. Precedent: Node.js agent 1 s.
CLIENT_KEEP_ALIVE_MARGIN = 1.0
#: Redirects followed before TooManyRedirects. Precedent: httpx and requests 20 (curl 50).
CLIENT_MAX_REDIRECTS = 20
#: Largest decoded (gzip/deflate) body; protects against decompression bombs.
#: Precedent: none in httpx/aiohttp; 10x our server's body limit would be 160 MiB, we take 64 MiB.
CLIENT_MAX_DECODED_BYTES = 64 * 1024 * 1024
#: Largest response head the client accepts. Precedent: h11's 16 KiB default.
CLIENT_MAX_HEADER_BYTES = 64 * 1024
#: How long closing a connection waits for the server's TLS close_notify before dropping it,
#: and so bounds ``Client.aclose()``. Precedent: asyncio's ssl_shutdown_timeout is 30 s, too
#: long for a client's exit; Go's Transport.CloseIdleConnections does not wait at all.
CLIENT_CLOSE_TIMEOUT = 1.0
#: The first pause before a retry (``Client(retries=N)``); each next one doubles, with jitter.
#: Precedent: urllib3's Retry backoff_factor (0 by default; 0.1-0.5 commonly set).
CLIENT_RETRY_BACKOFF = 0.1
#: The longest pause between two retries. Precedent: urllib3's BACKOFF_MAX 120 s, too long
#: for an interactive client; grpc's initial backoff 1 s, max 120 s.
CLIENT_RETRY_BACKOFF_MAX = 2.0

# --- TLS ------------------------------------------------------------------------------------

#: The one application protocol offered and accepted by ALPN.
ALPN_PROTOCOLS = ("http/1.1",)

#: TLS 1.2 cipher suites: forward-secret (ECDHE) AEAD only. TLS 1.3's are all AEAD and
#: forward-secret already. Precedent: Mozilla's "intermediate" configuration.
TLS12_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

#: Key-exchange groups a server offers, preferred first. Precedent: Mozilla's "intermediate"
#: and "modern" profiles (X25519, prime256v1, secp384r1); OpenSSL alone also offers X448 and
#: secp521r1.
TLS_GROUPS = "X25519:prime256v1:secp384r1"
#: Seconds between two INFO lines summing up failed TLS handshakes (the first is logged at
#: once). Precedent: none (nginx logs each at INFO); a scanner makes hundreds a minute.
TLS_FAILURE_LOG_INTERVAL = 60.0

# --- certificates (pki) ---------------------------------------------------------------------

#: How long a CRL from ``certs crl`` is valid (its nextUpdate). Precedent: ``openssl ca``'s
#: default_crl_days of 30 in the stock openssl.cnf.
CRL_DAYS = 30
#: Default key type. Precedent: mkcert uses RSA 2048 for compatibility; Let's Encrypt and
#: trustme default to ECDSA P-256, which is faster to handshake and universally supported.
DEFAULT_KEY_TYPE = "ec-p256"
#: Leaf certificate lifetime. Precedent: Let's Encrypt issues 90-day certificates.
LEAF_DAYS = 90
#: Longest lifetime browsers accept today. Precedent: CA/Browser Forum limit of 398 days (2020).
LEAF_DAYS_WARN = 398
#: Longest lifetime we sign at all. Precedent: the CA/B Forum's earlier 825-day limit (2018),
#: which Apple still enforces for locally trusted roots.
LEAF_DAYS_MAX = 825
#: Root CA lifetime. Precedent: mkcert 10 years.
ROOT_CA_DAYS = 3650
#: Intermediate CA lifetime. Precedent: common practice, half the root's.
INTERMEDIATE_CA_DAYS = 1825
#: notBefore is backdated by this much for clients whose clocks run behind. Precedent: trustme
#: and mkcert backdate; an hour covers ordinary drift.
BACKDATE_SECONDS = 3600
#: The development CA's leaf is re-issued when fewer days than this remain.
#: Precedent: certbot renews at 30 days left.
DEV_RENEW_DAYS = 30
#: Names the development CA may ever sign (a name constraint in its certificate), so trusting
#: it cannot be turned against any other site. Precedent: RFC 6761 special-use names.
DEV_CA_PERMITTED_DNS = ("localhost", ".localhost", ".test")
#: Addresses the development CA may ever sign: loopback only, as for the names above.
DEV_CA_PERMITTED_IPS = ("127.0.0.0/8", "::1/128")

# --- app: forms ----------------------------------------------------------------------------

#: Most fields (files included) a form may have; 400 above it. Precedent: Starlette's
#: max_fields 1,000; Django's DATA_UPLOAD_MAX_NUMBER_FIELDS 1,000.
FORM_MAX_FIELDS = 1000

#: Most files a multipart form may carry; 400 above it. Precedent: Starlette's max_files 1,000.
FORM_MAX_FILES = 1000

#: Largest non-file part of a multipart form (a text field), in bytes; 413 above it. Files are
#: bounded only by the total (the route's ``max_body_size``). Precedent: Starlette's
#: max_part_size 1 MiB.
FORM_MAX_PART_BYTES = 1024 * 1024

#: Largest head of one multipart part (its Content-Disposition and Content-Type lines); 400
#: above it. Precedent: the request head limit here, MAX_HEADER_BYTES, is 16 KiB.
FORM_MAX_PART_HEAD_BYTES = 16 * 1024

#: Bytes of an uploaded file kept in memory before it moves to a temporary file. Precedent:
#: Starlette's UploadFile spools at 1 MiB; Django's FILE_UPLOAD_MAX_MEMORY_SIZE is 2.5 MB.
FORM_SPOOL_BYTES = 1024 * 1024
