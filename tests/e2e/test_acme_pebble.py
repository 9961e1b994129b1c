"""Automatic HTTPS against pebble, Let's Encrypt's ACME test server, with real validation.

Pebble's validation authority resolves the names through pebble-challtestsrv (every name is
127.0.0.1) and connects back to the HTTP-01 listener of the server under test.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import re
import socket
import ssl
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from cryptography import x509

from framework import App, Client, Request
from framework.acme import AcmeError, AcmeService, AcmeSettings, StoredCertificate
from framework.deploy import start_server
from framework.testing import eventually
from tests.conftest import require_tool
from tests.e2e.pebble import Pebble, free_port, run_pebble
from tests.e2e.serve_cli import REPO, SERVING, STARTUP_TIMEOUT, environment, serve_cli

NAMES = ("app.example.test", "www.example.test")


@pytest.fixture(scope="module")
def pebble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    with run_pebble(
        require_tool("pebble"),
        require_tool("pebble-challtestsrv"),
        tmp_path_factory.mktemp("pebble"),
    ) as running:
        yield running


@pytest.fixture(scope="module")
def pebble_root(pebble: Pebble, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pebble-root") / "root.pem"
    path.write_bytes(pebble.root_pem())
    return path


def hello_app() -> App:
    app = App()

    @app.get("/")
    async def hello(request: Request) -> str:
        return "hello over ACME"

    return app


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def settings(pebble: Pebble, storage: Path, **changes: object) -> AcmeSettings:
    assert is_loopback_url(pebble.directory), "tests never talk to a public ACME CA"
    values: dict[str, object] = {
        "domains": NAMES,
        "email": "ops@example.test",
        "directory": pebble.directory,
        "agree_tos": True,
        "ca_bundle": str(pebble.ca_bundle),
        "http_port": pebble.http_port,
        "storage": storage,
    }
    values.update(changes)
    return AcmeSettings(**values)  # type: ignore[arg-type]


def issued_count(pebble: Pebble) -> int:
    return pebble.log.read_text().count("Issued certificate serial")


def served_serial(port: int, root: Path, name: str = NAMES[0]) -> int:
    context = ssl.create_default_context(cafile=str(root))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_http01_issuance_serves_a_certificate_chaining_to_pebbles_root(
    pebble: Pebble, pebble_root: Path, tmp_path: Path
) -> None:
    curl = require_tool("curl")
    before = issued_count(pebble)

    async def main() -> None:
        server = await start_server(
            hello_app(), port=0, acme=settings(pebble, tmp_path), access_log=False
        )
        try:
            port = server.port
            # Our own client, trusting only pebble's root, for both names of the certificate.
            async with Client(ca=pebble_root, resolve={n: "127.0.0.1" for n in NAMES}) as client:
                for name in NAMES:
                    response = await client.get(f"https://{name}:{port}/")
                    assert response.status == 200
                    assert response.content == b"hello over ACME"
            # And curl, as a user checks it.
            result = await asyncio.to_thread(
                subprocess.run,
                [curl, "-sS", "--cacert", str(pebble_root), "--resolve",
                 f"{NAMES[1]}:{port}:127.0.0.1", f"https://{NAMES[1]}:{port}/"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert result.stdout == "hello over ACME"
        finally:
            await server.aclose()

    asyncio.run(main())
    assert issued_count(pebble) == before + 1
    (folder,) = (tmp_path).glob("*/certificates/app.example.test")
    assert stat.S_IMODE((folder / "key.pem").stat().st_mode) == 0o600
    (account_key,) = tmp_path.glob("*/account.key")
    assert stat.S_IMODE(account_key.stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates((folder / "cert.pem").read_bytes())
    assert len(chain) >= 2  # leaf and pebble's intermediate
    san = chain[0].extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sorted(san.get_values_for_type(x509.DNSName)) == sorted(NAMES)


def test_a_stored_certificate_is_served_at_once_without_a_new_order(
    pebble: Pebble, pebble_root: Path, tmp_path: Path
) -> None:
    async def main() -> tuple[int, int]:
        serials = []
        for _ in range(2):
            service = AcmeService(settings(pebble, tmp_path), host="127.0.0.1", https_port=443)
            stored = await service.start()
            await service.aclose()
            serials.append(x509.load_pem_x509_certificates(stored.cert_path.read_bytes())[0])
        return serials[0].serial_number, serials[1].serial_number

    before = issued_count(pebble)
    first, second = asyncio.run(main())
    assert first == second
    assert issued_count(pebble) == before + 1


def test_renewal_swaps_the_certificate_with_no_failed_request(
    pebble: Pebble, pebble_root: Path, tmp_path: Path
) -> None:
    # A renewal point just after issuance: pebble 2.4's certificates live five years.
    acme = settings(pebble, tmp_path, renew_fraction=1e-8)

    async def main() -> None:
        server = await start_server(hello_app(), port=0, acme=acme, access_log=False)
        port = server.port
        first = await asyncio.to_thread(served_serial, port, pebble_root)
        failures: list[BaseException] = []
        done = 0
        stop = asyncio.Event()

        async def load() -> None:
            nonlocal done
            async with Client(ca=pebble_root, resolve={NAMES[0]: "127.0.0.1"}) as client:
                for _ in range(100_000):
                    if stop.is_set():
                        return
                    try:
                        response = await client.get(f"https://{NAMES[0]}:{port}/")
                        assert response.status == 200
                        done += 1
                    except Exception as exc:  # every failure counts against zero
                        failures.append(exc)

        try:
            workers = [asyncio.create_task(load()) for _ in range(4)]
            # The served serial changes once a renewal is swapped in (polled, bounded).
            deadline = asyncio.get_running_loop().time() + 60
            after = first
            while after == first and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.1)
                after = await asyncio.to_thread(served_serial, port, pebble_root)
            assert after != first, "no renewal was swapped in within 60 s"
            served_before_stop = done
            stop.set()
            await asyncio.gather(*workers)
        finally:
            stop.set()
            await server.aclose()
        assert failures == []
        assert served_before_stop > 0
        assert done >= served_before_stop

    asyncio.run(main())


def _serial_of(path: Path) -> int:
    """The leaf's serial number in a PEM chain file."""
    return x509.load_pem_x509_certificates(path.read_bytes())[0].serial_number


def test_bad_nonces_are_retried(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with run_pebble(
        require_tool("pebble"), require_tool("pebble-challtestsrv"), tmp_path, nonce_reject=40
    ) as rejecting:
        caplog.set_level(logging.DEBUG, logger="framework.acme")

        async def main() -> None:
            service = AcmeService(
                settings(rejecting, tmp_path / "store"), host="127.0.0.1", https_port=443
            )
            await service.start()
            await service.aclose()

        asyncio.run(main())
        assert issued_count(rejecting) == 1
    retries = [r for r in caplog.records if "refused a nonce" in r.getMessage()]
    assert retries, "pebble rejected 40% of nonces; at least one retry was expected"


def test_a_refused_validation_is_one_clear_line(pebble: Pebble, tmp_path: Path) -> None:
    # Our HTTP-01 listener is not where pebble connects: the validation is refused.
    acme = settings(pebble, tmp_path, http_port=free_port())

    async def main() -> None:
        service = AcmeService(acme, host="127.0.0.1", https_port=443)
        await service.start()

    with pytest.raises(AcmeError) as info:
        asyncio.run(main())
    message = str(info.value)
    assert "\n" not in message
    assert info.value.kind == "connection"
    assert "could not connect to this server to validate" in message
    assert NAMES[0] in message or NAMES[1] in message


def test_a_failing_renewal_keeps_the_stored_certificate_served(
    pebble: Pebble, pebble_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def first() -> None:
        service = AcmeService(settings(pebble, tmp_path), host="127.0.0.1", https_port=443)
        await service.start()
        await service.aclose()

    asyncio.run(first())
    stored = next(tmp_path.glob("*/certificates/app.example.test/cert.pem"))
    serial = _serial_of(stored)
    caplog.set_level(logging.INFO, logger="framework.acme")
    # Renewal due at once, but validation cannot reach this server.
    broken = settings(pebble, tmp_path, http_port=free_port(), renew_fraction=1e-8)

    async def main() -> None:
        server = await start_server(hello_app(), port=0, acme=broken, access_log=False)
        try:
            await eventually(
                lambda: any("renewing the certificate" in r.getMessage() for r in caplog.records),
                within=60,
            )
            assert await asyncio.to_thread(served_serial, server.port, pebble_root) == serial
        finally:
            await server.aclose()

    asyncio.run(main())
    (line,) = [
        r.getMessage() for r in caplog.records if "renewing the certificate" in r.getMessage()
    ]
    assert "could not connect to this server to validate" in line
    assert "stays in force" in line


def test_every_request_of_an_issuance_goes_to_loopback(
    pebble: Pebble, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="framework.acme")

    async def main() -> None:
        service = AcmeService(settings(pebble, tmp_path), host="127.0.0.1", https_port=443)
        await service.start()
        await service.aclose()

    asyncio.run(main())
    urls = [
        str(r.args[1])
        for r in caplog.records
        if r.getMessage().startswith("ACME request:") and isinstance(r.args, tuple)
    ]
    # directory, nonce, account, order, authorizations, challenges, finalize, certificate
    assert len(urls) >= 8
    assert [u for u in urls if not is_loopback_url(u)] == []


def test_cli_serve_acme_gets_a_certificate_and_curl_trusts_it(
    pebble: Pebble, pebble_root: Path, tmp_path: Path
) -> None:
    curl = require_tool("curl")
    name = "cli.example.test"
    args = [
        "examples.hello:app", "--port", str(pebble.tls_port), "--acme", name,
        "--acme-email", "ops@example.test", "--acme-agree-tos",
        "--acme-directory", pebble.directory, "--acme-ca-bundle", str(pebble.ca_bundle),
        "--acme-http-port", str(pebble.http_port),
    ]  # fmt: skip
    with serve_cli(args, env=environment(tmp_path / "home"), cwd=REPO) as running:
        running.wait_for(re.compile(r"ACME: certificate for cli\.example\.test issued"), timeout=60)
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        result = subprocess.run(
            [curl, "-sS", "--cacert", str(pebble_root), "--resolve", f"{name}:{port}:127.0.0.1",
             f"https://{name}:{port}/"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout == "Hello, world!"
        # Plain HTTP on the challenge port redirects to HTTPS, path and query kept.
        redirect = subprocess.run(
            [curl, "-sS", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}",
             "--resolve", f"{name}:{pebble.http_port}:127.0.0.1",
             f"http://{name}:{pebble.http_port}/a/b?c=1"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert redirect.stdout == f"308 https://{name}:{port}/a/b?c=1"
    key = next((tmp_path / "home").glob("acme/*/certificates/cli.example.test/key.pem"))
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--acme-email", "a@example.test"], "--acme-email needs --acme NAME"),
        (["--acme", "x.example.test", "--no-tls"], "drop --no-tls"),
        (
            ["--acme", "x.example.test", "--workers", "2", "--acme-challenge", "tls-alpn-01"],
            "with --workers use http-01",
        ),
        (["--acme", "127.0.0.1"], "DNS names, not addresses"),
        (["--acme", "x.example.test", "--certfile", "c.pem"], "drop --certfile"),
        (
            ["--acme", "x.example.test", "--acme-staging", "--acme-directory", "https://h/d"],
            "pick one",
        ),
    ],
)
def test_cli_acme_mistakes_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "framework", "serve", "examples.hello:app", "--port", "0", *args],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=environment(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def orders_count(pebble: Pebble) -> int:
    return pebble.log.read_text().count("POST /order-plz")


def test_two_instances_on_one_storage_place_one_order(pebble: Pebble, tmp_path: Path) -> None:
    before, orders = issued_count(pebble), orders_count(pebble)
    # Only the first instance's challenge port is where pebble validates: were the second
    # to order too, its validation would fail.
    first = AcmeService(settings(pebble, tmp_path), host="127.0.0.1", https_port=443)
    second = AcmeService(
        settings(pebble, tmp_path, http_port=free_port()), host="127.0.0.1", https_port=443
    )
    lock = first.storage.certificate_dir(first.names) / "order.lock"

    async def main() -> tuple[StoredCertificate, StoredCertificate]:
        ordering = asyncio.create_task(first.start())
        await eventually(lambda: lock.exists() or ordering.done(), within=30)
        assert lock.exists(), "the first instance took the lock"
        waiting = asyncio.create_task(second.start())
        try:
            return await ordering, await waiting
        finally:
            await first.aclose()
            await second.aclose()

    one, two = asyncio.run(main())
    assert orders_count(pebble) == orders + 1
    assert issued_count(pebble) == before + 1
    assert _serial_of(one.cert_path) == _serial_of(two.cert_path)
    assert not lock.exists()


def test_a_crashed_holders_lock_expires(pebble: Pebble, tmp_path: Path) -> None:
    service = AcmeService(
        settings(pebble, tmp_path, lock_expiry=1.0), host="127.0.0.1", https_port=443
    )
    lock = service.storage.certificate_dir(service.names) / "order.lock"
    lock.parent.mkdir(parents=True)
    # What a holder that died mid-order leaves: its lock, with an expiry just passed.
    lock.write_text(json.dumps({"token": "dead", "pid": 999999, "expires": time.time() - 0.1}))

    async def main() -> StoredCertificate:
        try:
            return await service.start()
        finally:
            await service.aclose()

    assert _serial_of(asyncio.run(main()).cert_path) > 0
    assert not lock.exists()


def verified_serial(port: int, root: Path, name: str) -> int | None:
    """The served leaf's serial when it verifies against ``root``, else ``None``."""
    try:
        return served_serial(port, root, name)
    except ssl.SSLCertVerificationError:
        return None


def test_tls_alpn01_issuance_on_the_https_port(
    pebble: Pebble, pebble_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="framework.acme")
    curl = require_tool("curl")
    # No HTTP-01 where pebble looks: only TLS-ALPN-01, on the HTTPS port pebble connects to.
    acme = settings(pebble, tmp_path, challenges=("tls-alpn-01",), http_port=free_port())
    before = issued_count(pebble)

    async def main() -> None:
        server = await start_server(hello_app(), port=pebble.tls_port, acme=acme, access_log=False)
        try:
            # A self-signed placeholder first; the issued certificate once pebble validated.
            deadline = asyncio.get_running_loop().time() + 60
            serial = None
            while serial is None and asyncio.get_running_loop().time() < deadline:
                serial = await asyncio.to_thread(
                    verified_serial, pebble.tls_port, pebble_root, NAMES[0]
                )
                if serial is None:
                    await asyncio.sleep(0.1)  # polling for the issuance, bounded above
            assert serial is not None, "no certificate from pebble within 60 s"
            result = await asyncio.to_thread(
                subprocess.run,
                [curl, "-sS", "--cacert", str(pebble_root), "--resolve",
                 f"{NAMES[1]}:{pebble.tls_port}:127.0.0.1", f"https://{NAMES[1]}:{pebble.tls_port}/"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert result.stdout == "hello over ACME"
        finally:
            await server.aclose()

    asyncio.run(main())
    assert issued_count(pebble) == before + 1
    presented = [r for r in caplog.records if "presenting the TLS-ALPN-01" in r.getMessage()]
    assert presented, "pebble's validation was answered with the challenge certificate"


def test_cli_certs_acme_obtain_into_files_and_show(
    pebble: Pebble, pebble_root: Path, tmp_path: Path
) -> None:
    env = environment(tmp_path / "home")
    out_cert, out_key = tmp_path / "out.pem", tmp_path / "out.key"
    command = [
        sys.executable, "-m", "framework", "certs", "acme", "obtain",
        "--acme", "files.example.test", "--acme-agree-tos", "--acme-directory", pebble.directory,
        "--acme-ca-bundle", str(pebble.ca_bundle), "--acme-http-port", str(pebble.http_port),
        "--host", "127.0.0.1", "--cert", str(out_cert), "--key", str(out_key),
    ]  # fmt: skip
    before = orders_count(pebble)
    for _ in range(2):  # the second run finds the stored certificate still good
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=60, cwd=REPO, env=env
        )
        assert result.returncode == 0, result.stderr
        assert "certificate for files.example.test until" in result.stdout
    assert orders_count(pebble) == before + 1
    assert stat.S_IMODE(out_key.stat().st_mode) == 0o600
    chain = x509.load_pem_x509_certificates(out_cert.read_bytes())
    root = x509.load_pem_x509_certificate(pebble_root.read_bytes())
    # The chain ends below pebble's root: the last certificate is signed by it.
    chain[-1].verify_directly_issued_by(root)
    shown = subprocess.run(
        [sys.executable, "-m", "framework", "certs", "acme", "show"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=env,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "account key" in shown.stdout
    assert "files.example.test: until" in shown.stdout


class ChallTestSrvDNS:
    """A DNS provider over pebble-challtestsrv's management API, as a user's would be."""

    def __init__(self, management: str) -> None:
        self.management = management
        self.calls: list[tuple[str, str]] = []

    def _post(self, path: str, body: dict[str, str]) -> None:
        request = urllib.request.Request(
            f"{self.management}{path}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    async def set_txt(self, name: str, value: str) -> None:
        self.calls.append(("set", name))
        await asyncio.to_thread(self._post, "/set-txt", {"host": f"{name}.", "value": value})

    async def remove_txt(self, name: str, value: str) -> None:
        self.calls.append(("remove", name))
        await asyncio.to_thread(self._post, "/clear-txt", {"host": f"{name}."})


def test_dns01_for_a_wildcard_name(pebble: Pebble, pebble_root: Path, tmp_path: Path) -> None:
    dns = ChallTestSrvDNS(pebble.dns_management)
    names = ("*.wild.example.test", "wild.example.test")
    acme = settings(pebble, tmp_path, domains=names, dns=dns)

    async def main() -> None:
        server = await start_server(hello_app(), port=0, acme=acme, access_log=False)
        try:
            async with Client(
                ca=pebble_root, resolve={"any.wild.example.test": "127.0.0.1"}
            ) as client:
                response = await client.get(f"https://any.wild.example.test:{server.port}/")
                assert response.content == b"hello over ACME"
        finally:
            await server.aclose()

    asyncio.run(main())
    # The wildcard's authorization can only be DNS-01; its record is the base name's.
    assert ("set", "_acme-challenge.wild.example.test") in dns.calls
    assert ("remove", "_acme-challenge.wild.example.test") in dns.calls


def test_terms_of_service_must_be_agreed_explicitly(pebble: Pebble, tmp_path: Path) -> None:
    async def main() -> None:
        service = AcmeService(
            settings(pebble, tmp_path, agree_tos=False), host="127.0.0.1", https_port=443
        )
        await service.start()

    with pytest.raises(AcmeError) as info:
        asyncio.run(main())
    assert "--acme-agree-tos" in str(info.value)
    assert "\n" not in str(info.value)


def test_cli_an_unreachable_acme_ca_is_one_line(tmp_path: Path) -> None:
    closed = free_port()
    result = subprocess.run(
        [sys.executable, "-m", "framework", "serve", "examples.hello:app", "--port", "0",
         "--acme", "x.example.test", "--acme-directory", f"https://127.0.0.1:{closed}/dir",
         "--acme-http-port", "0"],
        capture_output=True, text=True, timeout=60, cwd=REPO, env=environment(tmp_path),
    )  # fmt: skip
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if "error" in line.lower()]
    assert len(errors) == 1, result.stderr
    assert f"cannot reach the ACME CA at https://127.0.0.1:{closed}/dir" in errors[0]
    assert "Traceback" not in result.stderr


APP_RUN_SCRIPT = """
import sys
from framework import App
from framework.acme import AcmeSettings

app = App()

@app.get("/")
async def hello(request):
    return "hello from app.run"

directory, bundle, http_port, port, storage = sys.argv[1:]
app.run(port=int(port), acme=AcmeSettings(
    domains=("run.example.test",), directory=directory, agree_tos=True, ca_bundle=bundle,
    http_port=int(http_port), storage=storage,
))
"""


def test_app_run_with_acme_settings(pebble: Pebble, pebble_root: Path, tmp_path: Path) -> None:
    curl = require_tool("curl")
    script = tmp_path / "run_app.py"
    script.write_text(APP_RUN_SCRIPT)
    port = free_port()
    command = [sys.executable, str(script), pebble.directory, str(pebble.ca_bundle),
               str(pebble.http_port), str(port), str(tmp_path / "store")]  # fmt: skip
    with subprocess.Popen(
        command, stderr=subprocess.PIPE, text=True, env=environment(tmp_path / "home")
    ) as process:
        try:
            assert process.stderr is not None
            seen = []
            for _ in range(200):  # start-up lines, bounded; readline returns "" at exit
                line = process.stderr.readline()
                seen.append(line)
                if not line or "serving on" in line:
                    break
            assert "serving on" in seen[-1], seen
            result = subprocess.run(
                [curl, "-sS", "--cacert", str(pebble_root), "--resolve",
                 f"run.example.test:{port}:127.0.0.1", f"https://run.example.test:{port}/"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert result.stdout == "hello from app.run"
        finally:
            process.terminate()  # by its PID, through the Popen that started it
            process.wait(15)
    assert process.returncode == 0


def test_cli_workers_serve_the_certificate_the_supervisor_got(
    pebble: Pebble, pebble_root: Path, tmp_path: Path
) -> None:
    curl = require_tool("curl")
    name = "workers.example.test"
    args = [
        "examples.hello:app", "--port", "0", "--workers", "2", "--acme", name,
        "--acme-agree-tos", "--acme-directory", pebble.directory,
        "--acme-ca-bundle", str(pebble.ca_bundle), "--acme-http-port", str(pebble.http_port),
    ]  # fmt: skip
    orders = orders_count(pebble)
    with serve_cli(args, env=environment(tmp_path / "home"), cwd=REPO) as running:
        # The supervisor's serving line comes once both workers serve.
        port = int(running.wait_for(SERVING, timeout=STARTUP_TIMEOUT).group(1))
        for _ in range(6):  # new connections, spread over both workers' sockets
            result = subprocess.run(
                [curl, "-sS", "--cacert", str(pebble_root), "--resolve",
                 f"{name}:{port}:127.0.0.1", f"https://{name}:{port}/"],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            assert result.stdout == "Hello, world!"
    assert orders_count(pebble) == orders + 1  # one order, by the supervisor


def test_workers_argv_replaces_the_acme_flags() -> None:
    from framework.cli_acme import workers_argv

    argv = ["serve", "app:app", "--acme", "a.test", "--acme-email=x@y.test", "--acme-agree-tos",
            "--workers", "2", "--acme-http-port", "8080"]  # fmt: skip
    assert workers_argv(argv, Path("/c.pem"), Path("/k.pem")) == [
        "serve", "app:app", "--workers", "2", "--certfile", "/c.pem", "--keyfile", "/k.pem",
    ]  # fmt: skip


def test_watch_reports_each_renewal(pebble: Pebble, tmp_path: Path) -> None:
    # What a supervisor uses: no server to reload, a callback (its SIGHUP to the workers).
    service = AcmeService(
        settings(pebble, tmp_path, renew_fraction=1e-8), host="127.0.0.1", https_port=443
    )
    renewed: list[StoredCertificate] = []

    async def main() -> int:
        first = await service.start()
        serial = _serial_of(first.cert_path)
        try:
            service.watch(renewed.append)
            await eventually(lambda: len(renewed) >= 1, within=60)
        finally:
            await service.aclose()
        return serial

    before = asyncio.run(main())
    assert _serial_of(renewed[0].cert_path) != before
    assert renewed[0].cert_path == service.storage.certificate_dir(service.names) / "cert.pem"
    assert service.renewals >= 1
