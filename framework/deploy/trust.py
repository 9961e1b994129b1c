"""Trusting a CA on this machine, as ``mkcert -install`` does (``framework certs trust``).

Two kinds of store: the system's (what curl, wget, Python's ``ssl`` default, Go and most
programs read), and the NSS databases in which Firefox and Chromium on Linux keep their own
trust. The system store needs root; without it nothing is changed and the exact commands to run
are returned instead. The NSS databases are the user's and are changed with ``certutil`` when it
is installed. Every step is reported as a line saying what was done, or what to run.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ..errors import FrameworkError

__all__ = ["SYSTEM_STORES", "SystemStore", "TrustResult", "change_trust"]


@dataclass(frozen=True)
class SystemStore:
    """Where one family of distributions keeps added CA certificates, and how it rebuilds."""

    name: str
    directory: Path
    update: tuple[str, ...]
    suffix: str  # update-ca-certificates reads only *.crt


#: The system stores mkcert knows, in the order they are looked for.
SYSTEM_STORES = (
    SystemStore(
        "Debian/Ubuntu/Alpine",
        Path("/usr/local/share/ca-certificates"),
        ("update-ca-certificates",),
        ".crt",
    ),
    SystemStore(
        "Fedora/RHEL",
        Path("/etc/pki/ca-trust/source/anchors"),
        ("update-ca-trust", "extract"),
        ".pem",
    ),
    SystemStore(
        "Arch",
        Path("/etc/ca-certificates/trust-source/anchors"),
        ("trust", "extract-compat"),
        ".crt",
    ),
    SystemStore(
        "openSUSE", Path("/usr/share/pki/trust/anchors"), ("update-ca-certificates",), ".pem"
    ),
)

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "brave")


@dataclass
class TrustResult:
    """What ``change_trust`` did (``done``) and what is left for the user to run (``todo``)."""

    done: list[str] = field(default_factory=list)
    todo: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing is left to do by hand."""
        return not self.todo


def _which(name: str) -> str | None:
    # update-ca-certificates lives in /usr/sbin, which a user's PATH often lacks.
    found = shutil.which(name)
    if found is None:
        for directory in ("/usr/sbin", "/sbin", "/usr/local/sbin"):
            if os.access(os.path.join(directory, name), os.X_OK):
                return os.path.join(directory, name)
    return found


def _run(argv: Sequence[str]) -> str | None:
    """Run a command; None when it worked, else its error output (one line)."""
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    output = (done.stderr or done.stdout).strip().splitlines()
    return output[-1] if output else f"exit status {done.returncode}"


def _system_store() -> SystemStore | None:
    for store in SYSTEM_STORES:
        if store.directory.is_dir() and _which(store.update[0]):
            return store
    return None


def _nss_databases(home: Path, create: bool) -> list[str]:
    """The NSS databases of Chromium (~/.pki/nssdb) and of Firefox profiles, as certutil -d."""
    found = []
    chromium = home / ".pki" / "nssdb"
    if create and not chromium.exists() and any(shutil.which(b) for b in _BROWSERS):
        # Chromium makes its database on first start; made now, it finds the CA there.
        chromium.mkdir(parents=True, mode=0o700)
        certutil = _which("certutil")
        if certutil is not None:
            _run([certutil, "-N", "-d", f"sql:{chromium}", "--empty-password"])
    candidates = [chromium, home / "snap" / "chromium" / "current" / ".pki" / "nssdb"]
    for mozilla in (home / ".mozilla" / "firefox", home / "snap/firefox/common/.mozilla/firefox"):
        if mozilla.is_dir():
            candidates += sorted(p for p in mozilla.iterdir() if p.is_dir())
    for directory in candidates:
        if (directory / "cert9.db").exists():
            found.append(f"sql:{directory}")
        elif (directory / "cert8.db").exists():
            found.append(f"dbm:{directory}")
    return found


def _identity(pem: bytes) -> tuple[str, str]:
    """(file name stem, NSS nickname) for a CA certificate, both unique to it."""
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise FrameworkError(f"not a PEM certificate: {exc}") from exc
    fingerprint = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest()[:16]
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    common = str(names[0].value) if names else "CA"
    return f"framework-ca-{fingerprint}", f"{common} {fingerprint}"


def change_trust(
    ca_cert: Path, *, uninstall: bool = False, home: Path | None = None
) -> TrustResult:
    """Add ``ca_cert`` to (or, with ``uninstall``, remove it from) this machine's trust stores.

    Args:
        ca_cert: the CA certificate (PEM).
        uninstall: remove it instead.
        home: whose browser profiles to change (default: ``$HOME``).

    Raises:
        FrameworkError: ``ca_cert`` cannot be read or is not a certificate.
    """
    try:
        pem = ca_cert.read_bytes()
    except OSError as exc:
        raise FrameworkError(f"cannot read {ca_cert}: {exc.strerror or exc}") from exc
    stem, nickname = _identity(pem)
    result = TrustResult()
    _change_system(ca_cert, stem, uninstall, result)
    _change_nss(ca_cert, nickname, uninstall, Path(home or Path.home()), result)
    return result


def _change_system(ca_cert: Path, stem: str, uninstall: bool, result: TrustResult) -> None:
    store = _system_store()
    if store is None:
        if sys.platform == "darwin":
            action = "remove-trusted-cert -d" if uninstall else "add-trusted-cert -d -r trustRoot"
            keychain = "" if uninstall else " -k /Library/Keychains/System.keychain"
            result.todo.append(f"sudo security {action}{keychain} {ca_cert}")
        else:
            known = ", ".join(str(s.directory) for s in SYSTEM_STORES)
            result.todo.append(f"no system trust store found (looked for {known})")
        return
    target = store.directory / f"{stem}{store.suffix}"
    update = " ".join(store.update)
    if uninstall and not target.exists():
        result.done.append(f"system store: {target} was not there; nothing to remove")
        return
    if os.geteuid() != 0:
        step = f"rm {target}" if uninstall else f"install -m 644 {ca_cert} {target}"
        result.todo.append(f"system store needs root: sudo {step} && sudo {update}")
        return
    if uninstall:
        target.unlink()
    else:
        shutil.copyfile(ca_cert, target)
        target.chmod(0o644)
    error = _run([_which(store.update[0]) or store.update[0], *store.update[1:]])
    if error is not None:
        result.todo.append(f"system store: {update} failed ({error}); run it again")
        return
    verb = "removed" if uninstall else "installed"
    result.done.append(f"system store ({store.name}): {verb} {target}, then ran {update}")


def _change_nss(
    ca_cert: Path, nickname: str, uninstall: bool, home: Path, result: TrustResult
) -> None:
    certutil = _which("certutil")
    if certutil is None:
        databases = _nss_databases(home, create=False)
        if databases:
            result.todo.append(
                f"Firefox/Chromium keep their own trust ({len(databases)} database(s) under "
                f"{home}): install certutil (apt-get install libnss3-tools, dnf install "
                "nss-tools) and run this again"
            )
        return
    databases = _nss_databases(home, create=not uninstall)
    for db in databases:
        present = _run([certutil, "-L", "-d", db, "-n", nickname]) is None
        if uninstall:
            if not present:
                continue
            error = _run([certutil, "-D", "-d", db, "-n", nickname])
        else:
            if present:
                result.done.append(f"browser store {db}: already trusted as {nickname!r}")
                continue
            error = _run(
                [certutil, "-A", "-d", db, "-t", "C,,", "-n", nickname, "-i", str(ca_cert)]
            )
        if error is not None:
            result.todo.append(f"browser store {db}: certutil failed ({error})")
        else:
            verb = "removed" if uninstall else "added"
            result.done.append(f"browser store {db}: {verb} {nickname!r} (restart the browser)")
