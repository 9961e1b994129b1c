"""Automatic HTTPS: obtain a certificate at start-up, answer its challenges, renew it in place."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from .. import pki
from ..errors import FrameworkError
from ..server import Server
from .client import LETS_ENCRYPT, AcmeClient
from .dns01 import DnsProvider, txt_record
from .errors import AcmeError
from .http01 import Http01Responder
from .jws import key_authorization
from .storage import LOCK_EXPIRY, AcmeStorage, StoredCertificate
from .tlsalpn import TlsAlpnResponder, hook_available, self_signed

__all__ = ["AcmeService", "AcmeSettings", "start_acme"]

log = logging.getLogger("framework.acme")

_BACKOFF_FIRST = 60.0  # seconds before the first retry of a failed renewal
_BACKOFF_MAX = 6 * 3600.0  # and the longest wait between retries
_SCHEDULER_TICK = 3600.0  # the renewal time is looked at again at least this often
_ARI_RECHECK = 6 * 3600.0  # renewal information is asked for again this often (RFC 9773 4.3)


@dataclass(frozen=True)
class AcmeSettings:
    """What ``serve --acme ...`` (``app.run(acme=...)``) asks of the ACME CA.

    Attributes:
        domains: the DNS names of the certificate (one certificate for all of them).
        email: the account's contact address (the CA warns there before expiry problems).
        directory: the CA's directory URL; Let's Encrypt's production one by default.
        agree_tos: agree to the CA's terms of service (needed to create an account).
        ca_bundle: CA certificates to trust for the ACME server (a private CA, as pebble's).
        http_port: where HTTP-01 challenges are answered (plain HTTP; 80 on the internet).
        storage: the root of the stored state (``$FRAMEWORK_HOME/acme`` by default).
        renew_fraction: renew when this share of the certificate's lifetime has passed.
        challenges: the challenge types to answer, in order of preference (``http-01`` on
            ``http_port``, ``tls-alpn-01`` on the HTTPS port).
        dns: a ``DnsProvider`` (set and remove TXT records): DNS-01, for wildcard names.
        lock_expiry: seconds an instance may hold the order lock of a shared storage
            directory before the others take it over (it crashed).
    """

    domains: tuple[str, ...]
    email: str | None = None
    directory: str = LETS_ENCRYPT
    agree_tos: bool = False
    ca_bundle: str | None = None
    http_port: int = 80
    storage: str | os.PathLike[str] | None = None
    renew_fraction: float = 2 / 3
    lock_expiry: float = LOCK_EXPIRY
    dns: DnsProvider | None = None

    @property
    def challenge_order(self) -> tuple[str, ...]:
        """The challenges answered, in order: those asked for, then DNS-01 with a provider."""
        if self.dns is not None and "dns-01" not in self.challenges:
            return (*self.challenges, "dns-01")
        return self.challenges

    challenges: tuple[str, ...] = field(default=("http-01",))

    def __post_init__(self) -> None:
        if not self.domains:
            raise FrameworkError("--acme needs a domain name, e.g. --acme example.com")
        for name in self.domains:
            try:
                parsed = pki.parse_hosts([name])
            except ValueError as exc:
                raise FrameworkError(f"--acme {name!r}: {exc}") from None
            if not all(isinstance(n, x509.DNSName) for n in parsed):
                raise FrameworkError(
                    f"--acme {name!r}: ACME certificates here are for DNS names, not addresses"
                )
        unknown = set(self.challenges) - {"http-01", "tls-alpn-01", "dns-01"}
        if unknown or not self.challenges:
            raise FrameworkError(
                f"ACME challenges here are http-01, tls-alpn-01 and dns-01, not {sorted(unknown)}"
            )
        if self.dns is not None and not isinstance(self.dns, DnsProvider):
            raise FrameworkError("dns= takes an object with async set_txt() and remove_txt()")
        if any(n.startswith("*.") for n in self.domains) and self.dns is None:
            raise FrameworkError(
                "a wildcard name needs the DNS-01 challenge: pass dns= a DnsProvider"
            )
        if not 0.0 < self.renew_fraction < 1.0:
            raise FrameworkError(
                f"renew_fraction must be between 0 and 1, not {self.renew_fraction}"
            )


def _prefer_tls_alpn(settings: AcmeSettings) -> bool:
    """Whether TLS-ALPN-01 is the first challenge asked for (and this Python can answer it)."""
    return (
        bool(settings.challenges) and settings.challenges[0] == "tls-alpn-01" and hook_available()
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class AcmeService:
    """The ACME side of one server: the HTTP-01 listener, the stored certificate, renewal.

    ``await start()`` before the HTTPS server starts (it returns the certificate to serve:
    the stored one when still valid, else a new one), ``attach(server)`` once it listens
    (renewals then reload it), ``await aclose()`` when it stops.

    Args:
        settings: the ``AcmeSettings``.
        host: the address the HTTP-01 listener binds (the HTTPS server's).
        https_port: where plain-HTTP requests are redirected to.
    """

    def __init__(
        self, settings: AcmeSettings, *, host: str | Sequence[str], https_port: int
    ) -> None:
        self.settings = settings
        self.storage = AcmeStorage(settings.directory, settings.storage)
        self.responder = Http01Responder(https_port)
        self._host = host
        self._http: Server | None = None
        self._server: Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.current: StoredCertificate | None = None
        self.placeholder = False  # serving a self-signed certificate until the first issuance
        self._tls: TlsAlpnResponder | None = None
        self._on_renewed: Callable[[StoredCertificate], None] | None = None
        self.renewals = 0

    @property
    def names(self) -> tuple[str, ...]:
        """The certificate's names, in order (the first names its directory)."""
        return tuple(n.lower().rstrip(".") for n in self.settings.domains)

    @property
    def http_port(self) -> int | None:
        """The port the HTTP-01 listener got (``None`` before ``start()``)."""
        return self._http.port if self._http is not None else None

    async def start(self) -> StoredCertificate:
        """A valid certificate to serve: the stored one, a new one, or a placeholder.

        The HTTP-01 listener is opened first when HTTP-01 is among the challenges; with
        TLS-ALPN-01 first and nothing stored, the placeholder is served until ``attach()``'s
        background task has the first certificate.

        Raises:
            AcmeError: there is no usable stored certificate and the CA did not issue one.
            FrameworkError: the HTTP-01 port cannot be listened on.
        """
        if "http-01" in self.settings.challenge_order:
            await self.start_listener()
        try:
            stored = self.storage.load(self.names)
            if stored is not None and stored.not_after > dt.datetime.now(dt.UTC):
                log.info(
                    "ACME: serving the stored certificate for %s (valid until %s)",
                    ", ".join(self.names),
                    f"{stored.not_after:%Y-%m-%d %H:%M}",
                )
                self.current = stored
            elif _prefer_tls_alpn(self.settings):
                self.current = self._placeholder()
            else:
                log.info(
                    "ACME: no certificate for %s yet; ordering one from %s",
                    ", ".join(self.names),
                    self.settings.directory,
                )
                self.current = await self._obtain_unless(lambda c: c.not_after > _now())
        except BaseException:
            await self.aclose()
            raise
        return self.current

    @property
    def certfile(self) -> Path:
        """The chain in force (PEM, leaf first)."""
        if self.current is None:
            raise RuntimeError("start() the service first")
        return self.current.cert_path

    @property
    def keyfile(self) -> Path:
        """The key of ``certfile`` (PEM, 0600)."""
        if self.current is None:
            raise RuntimeError("start() the service first")
        return self.current.key_path

    async def start_listener(self) -> None:
        """Open the HTTP-01 listener (``start()`` does it first).

        Raises:
            FrameworkError: the port cannot be listened on (one line).
        """
        if self._http is not None:
            return
        self._http = Server(
            self.responder, host=self._host, port=self.settings.http_port, access_log=False
        )
        try:
            await self._http.start()
        except OSError as exc:
            self._http = None
            raise FrameworkError(
                f"cannot listen for ACME HTTP-01 challenges on port {self.settings.http_port}: "
                f"{exc.strerror or exc}; pick another --acme-http-port (the CA connects to 80 "
                "on the internet: forward it there)"
            ) from exc

    def watch(self, on_renewed: Callable[[StoredCertificate], None]) -> None:
        """Renew in the background, telling ``on_renewed`` of each new certificate.

        For a process that does not serve it itself (a supervisor whose workers reload).
        """
        self._on_renewed = on_renewed
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._renew_forever())

    def attach(self, server: Server) -> None:
        """Renew in the background from now on, swapping the certificate of ``server``."""
        self._server = server
        self.responder.https_port = server.port  # the real one, when port 0 was asked for
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _obtain_unless(self, good: Callable[[StoredCertificate], bool]) -> StoredCertificate:
        """Under the storage lock: the stored certificate if ``good``, else a new one."""
        async with self.storage.lock(self.names, self.settings.lock_expiry):
            stored = self.storage.load(self.names)
            if stored is not None and good(stored):
                log.info(
                    "ACME: using the certificate another instance stored for %s", self.names[0]
                )
                return stored
            return await self.obtain()

    async def obtain(self) -> StoredCertificate:
        """Order a certificate now: account, order, challenges, finalize, download, store.

        Raises:
            AcmeError: the CA refused (one line saying why).
        """
        settings = self.settings
        account_key = self.storage.account_key()
        tokens: list[str] = []
        alpn_names: list[str] = []
        records: list[tuple[str, str]] = []

        async def answer(kind: str, challenge: dict[str, Any], authz: dict[str, Any]) -> bool:
            token = str(challenge["token"])
            if kind == "tls-alpn-01":
                tls = self._tls_responder()
                if tls is None:
                    return False
                name = str((authz.get("identifier") or {}).get("value", ""))
                tls.add(name, key_authorization(token, account_key))
                alpn_names.append(name)
                return True
            if kind == "dns-01":
                if settings.dns is None:
                    return False
                name = str((authz.get("identifier") or {}).get("value", ""))
                record = txt_record(name, key_authorization(token, account_key))
                await settings.dns.set_txt(*record)
                records.append(record)
                return True
            if kind != "http-01" or self._http is None:
                return False
            self.responder.add(token, key_authorization(token, account_key))
            tokens.append(token)
            return True

        try:
            async with AcmeClient(
                settings.directory, account_key, ca_bundle=settings.ca_bundle
            ) as acme:
                await acme.register(settings.email, agree_tos=settings.agree_tos)
                order = await acme.new_order(self.names)
                await acme.authorize(order, answer, settings.challenge_order)
                key = pki.generate_private_key("ec-p256")
                order = await acme.finalize(order, pki.make_signing_request(key, self.names))
                chain = await acme.download(order)
        finally:
            for token in tokens:
                self.responder.remove(token)
            for name in alpn_names:
                if self._tls is not None:
                    self._tls.remove(name)
            for record in records:
                assert settings.dns is not None
                try:
                    await settings.dns.remove_txt(*record)
                except Exception as exc:  # the user's code: its failure must not hide ours
                    log.warning("ACME: removing the TXT record %s failed: %s", record[0], exc)
        self.storage.save(self.names, key, chain)
        stored = self.storage.load(self.names)
        if stored is None:
            raise AcmeError("the certificate the CA issued does not name what was ordered")
        log.info(
            "ACME: certificate for %s issued, valid until %s",
            ", ".join(self.names),
            f"{stored.not_after:%Y-%m-%d %H:%M}",
        )
        return stored

    def _next_renewal(self, current: StoredCertificate) -> dt.datetime:
        at = current.renew_at(self.settings.renew_fraction)
        lifetime = (current.not_after - current.not_before).total_seconds()
        # Jitter spreads the renewals of many servers started together: up to 1% of the
        # lifetime, an hour at most, and never more than a twentieth of the wait itself.
        wait = (at - current.not_before).total_seconds()
        spread = max(0.0, min(lifetime * 0.01, 3600.0, wait / 20))
        return at + dt.timedelta(seconds=random.uniform(0, spread))

    def _tls_responder(self) -> TlsAlpnResponder | None:
        """The TLS-ALPN-01 responder on the attached server, when this Python allows one."""
        if self._tls is None:
            store = self._server.certificates if self._server is not None else None
            if store is None or not hook_available():
                log.info("ACME: TLS-ALPN-01 is unavailable here; trying the next challenge")
                return None
            self._tls = TlsAlpnResponder(store.context)
        return self._tls

    def _placeholder(self) -> StoredCertificate:
        """A self-signed certificate for the names, served until the first issuance."""
        folder = self.storage.root / "placeholder" / self.names[0]
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        cert_pem, key_pem = self_signed(self.names)
        pki.write_file(folder / "key.pem", key_pem, force=True, mode=0o600)
        pki.write_file(folder / "cert.pem", cert_pem, force=True)
        leaf = x509.load_pem_x509_certificate(cert_pem)
        self.placeholder = True
        log.warning(
            "ACME: serving a self-signed placeholder for %s until the first certificate is "
            "issued (TLS-ALPN-01 needs the HTTPS port up); clients will not trust it meanwhile",
            ", ".join(self.names),
        )
        return StoredCertificate(
            folder / "cert.pem", folder / "key.pem", leaf.not_valid_before_utc,
            leaf.not_valid_after_utc,
        )  # fmt: skip

    def _renewed_elsewhere(self, stored: StoredCertificate) -> bool:
        """Another instance on the same storage renewed it meanwhile: no order is due."""
        assert self.current is not None
        if self.placeholder:
            return stored.not_after > _now()
        return (
            stored.not_before > self.current.not_before
            and stored.renew_at(self.settings.renew_fraction) > _now()
        )

    async def renewal_time(self, current: StoredCertificate) -> tuple[dt.datetime, float]:
        """When to renew ``current``, and when to ask the CA again (seconds from now).

        At ``renew_fraction`` of its lifetime (with jitter), or earlier when the CA's renewal
        information (RFC 9773) suggests a window that starts before that.
        """
        scheduled = self._next_renewal(current)
        recheck = _ARI_RECHECK
        try:
            leaf = pki.load_certificates(current.cert_path)[0]
            async with AcmeClient(
                self.settings.directory,
                self.storage.account_key(),
                ca_bundle=self.settings.ca_bundle,
            ) as acme:
                info = await acme.renewal_info(leaf)
        except (FrameworkError, ValueError) as exc:
            log.info("ACME: no renewal information (%s); renewing on the schedule", exc)
            return scheduled, recheck
        if info is None:
            return scheduled, recheck
        window, retry_after = info
        if retry_after is not None:
            recheck = min(max(retry_after, 60.0), 24 * 3600.0)
        if window.start >= scheduled:
            return scheduled, recheck
        when = window.pick(_now())
        log.info(
            "ACME: the CA suggests renewing %s between %s and %s%s",
            self.names[0], f"{window.start:%Y-%m-%d %H:%M}", f"{window.end:%Y-%m-%d %H:%M}",
            f" ({window.explanation})" if window.explanation else "",
        )  # fmt: skip
        return min(when, scheduled), recheck

    async def _renew_forever(self) -> None:
        backoff = _BACKOFF_FIRST
        assert self.current is not None
        if self.placeholder:
            when, recheck = _now(), _ARI_RECHECK
        else:
            when, recheck = await self.renewal_time(self.current)
        asked = asyncio.get_running_loop().time()
        earliest = _now()
        while True:
            wait = (when - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0:
                # A timer, not a synchronisation: the renewal time, or the next ARI question.
                await asyncio.sleep(min(wait, _SCHEDULER_TICK, recheck))
                if asyncio.get_running_loop().time() - asked >= recheck:
                    suggested, recheck = await self.renewal_time(self.current)
                    when = max(suggested, earliest)  # never before a failure's back-off ends
                    asked = asyncio.get_running_loop().time()
                continue
            try:
                renewed = await self._obtain_unless(self._renewed_elsewhere)
                if self._server is not None:
                    self._server.reload_certificate(renewed.cert_path, renewed.key_path)
                if self._on_renewed is not None:
                    self._on_renewed(renewed)
            except FrameworkError as exc:
                log.error(
                    "ACME: renewing the certificate for %s failed: %s; trying again in %.0f s "
                    "(the current certificate stays in force)",
                    ", ".join(self.names),
                    exc,
                    backoff,
                )
                when = earliest = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
                continue
            self.current = renewed
            self.placeholder = False
            self.renewals += 1
            backoff = _BACKOFF_FIRST
            when, recheck = await self.renewal_time(renewed)
            asked = asyncio.get_running_loop().time()

    async def aclose(self) -> None:
        """Stop renewing and close the HTTP-01 listener."""
        if self._tls is not None:
            self._tls.close()
            self._tls = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._http is not None:
            await self._http.aclose(1.0)
            self._http = None


async def start_acme(
    options: Mapping[str, Any], host: str | Sequence[str], port: int
) -> AcmeService:
    """The ``AcmeService`` of a server about to start with ``options`` (``serve``'s), started.

    Raises:
        FrameworkError: the options conflict, or no certificate could be had (one line).
    """
    if options.get("certfile") or options.get("keyfile"):
        raise FrameworkError(
            "--acme obtains the certificate itself; drop --certfile/--keyfile (or --acme)"
        )
    acme = options["acme"]
    if isinstance(acme, str):
        raise FrameworkError(f"acme= takes a list of domain names, not the string {acme!r}")
    settings = acme if isinstance(acme, AcmeSettings) else AcmeSettings(domains=tuple(acme))
    service = AcmeService(settings, host=host, https_port=port)
    await service.start()
    return service
