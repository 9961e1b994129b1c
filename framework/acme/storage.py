"""Where ACME state lives: ``$FRAMEWORK_HOME/acme/<CA>/`` (account key, certificates).

Private keys are 0600 from the moment they exist; every file is written to a temporary name
and renamed, so a reader (another worker, another instance) never sees half of one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from .. import pki
from ..errors import PKIError

__all__ = ["AcmeStorage", "StoredCertificate"]

log = logging.getLogger("framework.acme")

LOCK_EXPIRY = 600.0  # seconds a lock holder has to finish an order before others take over


@dataclass(frozen=True)
class StoredCertificate:
    """A certificate chain and its key on disk, and the leaf's validity."""

    cert_path: Path
    key_path: Path
    not_before: dt.datetime
    not_after: dt.datetime

    def renew_at(self, fraction: float = 2 / 3) -> dt.datetime:
        """When ``fraction`` of the lifetime has passed (2/3, as Let's Encrypt advises)."""
        return self.not_before + (self.not_after - self.not_before) * fraction


def _slug(url: str) -> str:
    parts = urlsplit(url)
    readable = re.sub(r"[^A-Za-z0-9.-]+", "-", f"{parts.hostname}-{parts.port or 443}")
    return f"{readable}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"


class AcmeStorage:
    """The files of one ACME directory URL under ``root`` (``$FRAMEWORK_HOME/acme``)."""

    def __init__(self, directory_url: str, root: str | os.PathLike[str] | None = None) -> None:
        self.root = (Path(root) if root is not None else pki.framework_home() / "acme") / _slug(
            directory_url
        )
        self.directory_url = directory_url

    @property
    def account_key_path(self) -> Path:
        """The account's private key (ECDSA P-256, 0600)."""
        return self.root / "account.key"

    def account_key(self) -> ec.EllipticCurvePrivateKey:
        """The account key, made (and stored 0600) on first use and reused after."""
        path = self.account_key_path
        if path.exists():
            key = pki.load_private_key(path)
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PKIError(f"{path} is not an ECDSA key; move it away to make a new account")
            return key
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = pki.generate_private_key("ec-p256")
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        try:
            pki.write_private_key(path, key)
        except PKIError:
            # Another process made it first; theirs is the account key.
            return self.account_key()
        return key

    def certificate_dir(self, names: tuple[str, ...]) -> Path:
        """The directory of the certificate for ``names`` (named after the first one)."""
        first = names[0].replace("*", "_wildcard_")
        return self.root / "certificates" / first

    def load(self, names: tuple[str, ...]) -> StoredCertificate | None:
        """The stored certificate for exactly ``names``, or ``None`` (missing or unreadable)."""
        folder = self.certificate_dir(names)
        cert_path, key_path = folder / "cert.pem", folder / "key.pem"
        try:
            chain = pki.load_certificates(cert_path)
            pki.load_private_key(key_path)
        except PKIError:
            return None
        leaf = chain[0]
        try:
            san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return None
        if set(san.get_values_for_type(x509.DNSName)) != set(names):
            return None  # the names asked for changed: a new order
        return StoredCertificate(
            cert_path, key_path, leaf.not_valid_before_utc, leaf.not_valid_after_utc
        )

    def save(self, names: tuple[str, ...], key: pki.PrivateKey, chain_pem: bytes) -> Path:
        """Store a new key and chain, each replaced atomically; returns the directory.

        The key is written first: a reader that sees the new chain finds its key already.
        Between the two renames a reader may pair the old chain with the new key; the
        server's reload checks that they match and keeps the old pair in force when not.
        """
        folder = self.certificate_dir(names)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        pki.write_private_key(folder / "key.pem", key, force=True)
        pki.write_file(folder / "cert.pem", chain_pem, force=True)
        return folder

    @asynccontextmanager
    async def lock(
        self, names: tuple[str, ...], expiry: float = LOCK_EXPIRY
    ) -> AsyncIterator[None]:
        """Hold the order lock of ``names`` (a file with an expiry) for the ``async with``.

        Instances sharing the storage directory (a mounted volume) order one at a time; a
        lock whose holder crashed is taken over once its expiry has passed.

        Raises:
            PKIError: the lock cannot be written, or was not released within twice its expiry.
        """
        folder = self.certificate_dir(names)
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / "order.lock"
        token = secrets.token_hex(8)
        holder = {"token": token, "pid": os.getpid(), "host": socket.gethostname()}
        deadline = time.monotonic() + 2 * expiry
        waited = False
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                other = _read_lock(path)
                if _expired(path, other, expiry):
                    log.warning("ACME: taking over the expired order lock %s (%s)", path, other)
                    path.unlink(missing_ok=True)
                    continue
                if not waited:
                    log.info("ACME: another instance is ordering (%s); waiting for it", other)
                    waited = True
                if time.monotonic() > deadline:
                    raise PKIError(f"the ACME order lock {path} was held too long") from None
                await asyncio.sleep(0.2)  # polling another process's lock file, bounded above
                continue
            except OSError as exc:
                raise PKIError(f"cannot write the ACME order lock {path}: {exc.strerror}") from exc
            with os.fdopen(fd, "w") as file:
                json.dump({**holder, "expires": time.time() + expiry}, file)
            break
        try:
            yield
        finally:
            current = _read_lock(path)
            if current is not None and current.get("token") == token:
                path.unlink(missing_ok=True)


def _read_lock(path: Path) -> dict[str, object] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _expired(path: Path, holder: dict[str, object] | None, expiry: float) -> bool:
    expires = holder.get("expires") if holder is not None else None
    if not isinstance(expires, int | float):
        # Unreadable (being written this instant, or left empty by a crash): judge by its age.
        try:
            expires = path.stat().st_mtime + expiry
        except OSError:
            return False  # gone already: the next attempt to create it will tell
    return expires < time.time()
