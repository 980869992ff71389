"""Telling systemd how the service is doing: ``sd_notify`` without libsystemd.

With ``Type=notify`` (``config/callrec.service``) systemd counts callrec as
started only once it says ``READY=1``, which ``callrec serve`` does when its
events websocket is up: "the Stasis app is listed" is no readiness signal,
Asterisk keeps listing the app of a crashed recorder while its calls remain
(docs/OPERATIONS.md, "Life cycle"). The protocol is one datagram of
``KEY=value`` lines to the unix socket named by ``$NOTIFY_SOCKET``; a name
starting with ``@`` is in the abstract namespace. Outside systemd the
variable is unset and every call here does nothing.

The unit also sets ``WatchdogSec=``: systemd then passes ``$WATCHDOG_USEC``
and expects ``WATCHDOG=1`` at least that often. :func:`feed_watchdog` sends it
from a task on the service's own event loop, so a loop that is stuck (no call
events handled, no RTP read) stops the pings and systemd restarts callrec.
A reload (SIGHUP, ``ExecReload=``) is announced with :func:`reloading` and
ends with ``READY=1``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

from callrec.clock import Clock
from callrec.logutil import safe

logger = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
READY = "READY=1"
STOPPING = "STOPPING=1"
RELOADING = "RELOADING=1"
WATCHDOG = "WATCHDOG=1"
WATCHDOG_USEC = "WATCHDOG_USEC"
WATCHDOG_PID = "WATCHDOG_PID"


def notify_address(value: str) -> str | None:
    """The ``AF_UNIX`` address of a ``$NOTIFY_SOCKET`` value, or None when unusable.

    ``/path`` is a socket file, ``@name`` the abstract socket ``\\0name``;
    anything else (systemd's ``vsock:`` addresses) is not supported here.
    """
    if value.startswith("/"):
        return value
    if value.startswith("@") and len(value) > 1:
        return "\0" + value[1:]
    return None


def notify(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send ``lines`` (``READY=1``, ``STATUS=...``) to systemd; True when sent.

    Never raises: a service manager that does not listen must not stop calls
    being recorded. Problems are logged once per call.
    """
    value = (os.environ if environ is None else environ).get(NOTIFY_SOCKET, "")
    if not value:
        return False
    address = notify_address(value)
    if address is None:
        logger.warning("%s=%s is not a unix socket: not notified", NOTIFY_SOCKET, safe(value))
        return False
    message = "\n".join(lines).encode("utf-8")
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message)
    except OSError as exc:
        logger.warning("cannot notify systemd (%s): %s", safe(value), exc.strerror or exc)
        return False
    return True


def reloading() -> tuple[str, str]:
    """The lines that begin a reload: ``RELOADING=1`` and ``MONOTONIC_USEC``.

    systemd 253 and later match a reload's ``READY=1`` to its request by this
    ``CLOCK_MONOTONIC`` time (``Type=notify-reload`` needs it); older ones
    ignore the field. It is the kernel's clock, never an injected one.
    """
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return RELOADING, f"MONOTONIC_USEC={usec}"


def watchdog_interval(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings, or None when systemd expects none.

    Half of ``$WATCHDOG_USEC``, as sd_watchdog_enabled(3) advises. None when
    the variable is unset, or when ``$WATCHDOG_PID`` names another process
    (a child that inherited the variables must not ping for its parent).
    """
    env = os.environ if environ is None else environ
    raw = env.get(WATCHDOG_USEC, "")
    if not raw:
        return None
    owner = env.get(WATCHDOG_PID, "")
    if owner and owner != str(os.getpid() if pid is None else pid):
        return None
    usec = int(raw) if raw.isascii() and raw.isdigit() else 0
    if usec <= 0:
        logger.warning(
            "%s=%s is no number of microseconds: no watchdog pings", WATCHDOG_USEC, safe(raw)
        )
        return None
    return usec / 2_000_000


async def feed_watchdog(interval: float, clock: Clock) -> None:
    """Send ``WATCHDOG=1`` every ``interval`` seconds until cancelled.

    Run it as a task on the event loop that serves the calls: the ping then
    proves that loop still runs, which a thread of its own could not.
    """
    while True:
        notify(WATCHDOG)
        await clock.sleep(interval)
