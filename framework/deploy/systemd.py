"""The systemd notification protocol (sd_notify(3)), with the standard library only.

When systemd starts a ``Type=notify`` service it sets ``NOTIFY_SOCKET`` to a datagram socket
and waits for ``READY=1``. A service also says ``RELOADING=1`` (with ``MONOTONIC_USEC=``) and
``READY=1`` again around a reload, ``STOPPING=1`` when it begins to stop, ``WATCHDOG=1`` at
least every ``WATCHDOG_USEC`` when the unit sets ``WatchdogSec=``, and ``STATUS=`` lines that
``systemctl status`` shows. Without ``NOTIFY_SOCKET`` nothing is sent.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping

__all__ = ["Notifier"]

log = logging.getLogger("framework.deploy")


class Notifier:
    """Sends state lines to the service manager at ``address`` (``NOTIFY_SOCKET``).

    Args:
        address: a socket path, or ``@name`` for a socket in the abstract namespace.
        watchdog_usec: the watchdog period systemd asked for (``WATCHDOG_USEC``), if any.
    """

    def __init__(self, address: str, watchdog_usec: int | None = None) -> None:
        self.address = address
        self._target = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_usec = watchdog_usec
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.set_inheritable(False)

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> Notifier | None:
        """The notifier ``NOTIFY_SOCKET`` asks for, or ``None``; the variables are then unset.

        They are removed so that processes this one starts (workers, an app's helpers) do
        not speak for the service; ``WATCHDOG_USEC`` counts only when ``WATCHDOG_PID`` is
        absent or names this process.
        """
        env = os.environ if environ is None else environ
        address = env.pop("NOTIFY_SOCKET", None)
        usec_text, pid_text = env.pop("WATCHDOG_USEC", None), env.pop("WATCHDOG_PID", None)
        if not address or not (address.startswith("/") or address.startswith("@")):
            return None
        usec: int | None = None
        try:
            if usec_text and (pid_text is None or int(pid_text) == os.getpid()):
                usec = int(usec_text) if int(usec_text) > 0 else None
        except ValueError:
            usec = None
        return cls(address, usec)

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between ``WATCHDOG=1`` pings (half the period, as sd_watchdog_enabled(3)
        advises), or ``None`` when no watchdog was asked for."""
        return self.watchdog_usec / 2e6 if self.watchdog_usec else None

    def send(self, *fields: str) -> bool:
        """Send ``fields`` (``"READY=1"``, ``"STATUS=..."``) as one message; False if it failed."""
        message = "\n".join(fields).encode()
        try:
            self._sock.sendto(message, self._target)
        except OSError as exc:
            # The manager went away or its socket is full: serving matters more than telling.
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Every listener serves (also: a reload is over)."""
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def reloading(self) -> bool:
        """A reload began; systemd waits for the next ``READY=1``."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading")

    def stopping(self) -> bool:
        """The service is stopping (draining)."""
        return self.send("STOPPING=1", "STATUS=stopping: finishing in-flight requests")

    def watchdog(self) -> bool:
        """The service is alive."""
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        """A line for ``systemctl status``."""
        return self.send(f"STATUS={text}")

    def close(self) -> None:
        """Close the notification socket."""
        self._sock.close()
