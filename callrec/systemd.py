"""Telling systemd how the service is doing: ``sd_notify`` without libsystemd.

With ``Type=notify`` (``config/callrec.service``) systemd counts callrec as
started only once it says ``READY=1``, which ``callrec serve`` does when its
events websocket is up: "the Stasis app is listed" is no readiness signal,
Asterisk keeps listing the app of a crashed recorder while its calls remain
(docs/OPERATIONS.md, "Life cycle"). The protocol is one datagram of
``KEY=value`` lines to the unix socket named by ``$NOTIFY_SOCKET``; a name
starting with ``@`` is in the abstract namespace. Outside systemd the
variable is unset and every call here does nothing.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from callrec.logutil import safe

logger = logging.getLogger(__name__)

NOTIFY_SOCKET = "NOTIFY_SOCKET"
READY = "READY=1"
STOPPING = "STOPPING=1"


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
