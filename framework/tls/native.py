"""The OpenSSL settings Python's ``ssl`` module has no call for: key-exchange groups and the
server's session cache.

Why ctypes on the context itself. Python 3.11 to 3.13 can set one ECDH curve
(``set_ecdh_curve``) but not the group list, so a server offers every group OpenSSL enables
(X448 and secp521r1 among them, which Mozilla's profiles leave out). The alternatives were
worse: an OpenSSL configuration file (``OPENSSL_CONF``) only works when set before ``ssl`` is
first imported, so it serves the command line and no one who builds a ``Server`` in Python, and
it changes every context of the process, the client's too. So we call
``SSL_CTX_set1_groups_list`` (a macro over ``SSL_CTX_ctrl``) on the ``SSL_CTX *`` the context
wraps: in CPython's ``PySSLContext`` it is the first field after ``PyObject_HEAD``, unchanged
from 3.7 to 3.13, and the functions come from the libssl that ``_ssl`` itself links to.

Nothing is trusted blindly. Before the first use we check that this is CPython, that the
library found is the one ``ssl`` reports (same version number), and that the pointer read from
a context we set up with unusual values reads those values back through OpenSSL's own
getters (options, verify mode, minimum version). If any check fails, or the Python has
``SSLContext.set_groups`` (3.15+, used instead), nothing native is called: one DEBUG line says
why and OpenSSL's defaults stay.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys
import threading
from typing import Any

__all__ = ["available", "set_groups", "set_session_cache"]

log = logging.getLogger("framework.tls")

# From openssl/ssl.h (stable across 1.1.1 and 3.x).
_SSL_CTRL_SET_SESS_CACHE_MODE = 44
_SSL_CTRL_GET_SESS_CACHE_MODE = 45
_SSL_CTRL_SET_GROUPS_LIST = 92
_SSL_CTRL_GET_MIN_PROTO_VERSION = 130
_SSL_SESS_CACHE_OFF = 0
_SSL_SESS_CACHE_SERVER = 2

_lock = threading.Lock()
_lib: Any = None  # the libssl handle once checked; False when it cannot be used
_why_not = ""


def _load() -> Any:
    """The checked libssl, or ``False`` (after one DEBUG line) when it must not be used."""
    global _lib, _why_not
    with _lock:
        if _lib is None:
            try:
                _lib = _check(_open())
            except Exception as exc:  # any surprise means: leave OpenSSL's defaults alone
                _lib, _why_not = False, str(exc)
                log.debug("OpenSSL's group list and session cache left as they are: %s", exc)
        return _lib


def _open() -> Any:
    if sys.implementation.name != "cpython":
        raise RuntimeError(f"not CPython ({sys.implementation.name})")
    import _ssl

    path = getattr(_ssl, "__file__", None)  # None when _ssl is built into the interpreter
    lib = ctypes.CDLL(path)  # dlsym on it also searches what it links to: its libssl
    lib.OpenSSL_version_num.restype = ctypes.c_ulong
    lib.OpenSSL_version_num.argtypes = []
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_get_options.restype = ctypes.c_uint64
    lib.SSL_CTX_get_options.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_get_verify_mode.restype = ctypes.c_int
    lib.SSL_CTX_get_verify_mode.argtypes = [ctypes.c_void_p]
    lib.ERR_clear_error.restype = None
    lib.ERR_clear_error.argtypes = []
    return lib


def _pointer(ctx: ssl.SSLContext) -> int:
    """The ``SSL_CTX *`` inside ``ctx``: the word after the object header."""
    offset = object.__basicsize__  # sizeof(PyObject): 16 on 64-bit builds
    return ctypes.c_void_p.from_address(id(ctx) + offset).value or 0


def _check(lib: Any) -> Any:
    version = lib.OpenSSL_version_num()
    if version != ssl.OPENSSL_VERSION_NUMBER:
        raise RuntimeError(
            f"the libssl found ({version:#x}) is not the one ssl uses "
            f"({ssl.OPENSSL_VERSION_NUMBER:#x})"
        )
    probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    probe.minimum_version = ssl.TLSVersion.TLSv1_3
    probe.verify_mode = ssl.CERT_OPTIONAL
    probe.options |= ssl.OP_NO_TICKET
    pointer = _pointer(probe)
    if not pointer:
        raise RuntimeError("no SSL_CTX pointer where CPython keeps it")
    if (
        lib.SSL_CTX_get_options(pointer) != int(probe.options)
        or lib.SSL_CTX_get_verify_mode(pointer) != 1  # SSL_VERIFY_PEER, as CERT_OPTIONAL sets
        or lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_GET_MIN_PROTO_VERSION, 0, None) != 0x0304
    ):
        raise RuntimeError(
            "the SSL_CTX read from an ssl.SSLContext does not read back its settings"
        )
    return lib


def available() -> bool:
    """True when the group list can be set on this Python (natively or through ``ssl``)."""
    return hasattr(ssl.SSLContext, "set_groups") or bool(_load())


def set_groups(ctx: ssl.SSLContext, groups: str) -> bool:
    """Offer only ``groups`` (OpenSSL's colon-separated names, preferred first) for key exchange.

    Returns False (and leaves OpenSSL's defaults) when this Python gives no way to do it.

    Raises:
        ValueError: OpenSSL knows none or not all of the names.
    """
    native_set = getattr(ctx, "set_groups", None)
    if native_set is not None:  # Python 3.15+
        try:
            native_set(groups)
        except ssl.SSLError as exc:
            raise ValueError(f"OpenSSL refused the group list {groups!r}: {exc}") from exc
        return True
    lib = _load()
    if not lib:
        return False
    if lib.SSL_CTX_ctrl(_pointer(ctx), _SSL_CTRL_SET_GROUPS_LIST, 0, groups.encode()) != 1:
        # Left on OpenSSL's error queue, it would be reported by the next unrelated ssl call.
        lib.ERR_clear_error()
        raise ValueError(f"OpenSSL refused the group list {groups!r}")
    return True


def set_session_cache(ctx: ssl.SSLContext, enabled: bool) -> bool:
    """Turn the server's session-ID cache (TLS 1.2 resumption without tickets) on or off.

    Returns False when this Python gives no way to do it (the cache then stays as it is).
    """
    lib = _load()
    if not lib:
        return False
    mode = _SSL_SESS_CACHE_SERVER if enabled else _SSL_SESS_CACHE_OFF
    pointer = _pointer(ctx)
    lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_SET_SESS_CACHE_MODE, mode, None)
    return bool(lib.SSL_CTX_ctrl(pointer, _SSL_CTRL_GET_SESS_CACHE_MODE, 0, None) == mode)
