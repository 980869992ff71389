"""Where the ``callrec`` command's log lines go, and how they look there.

On a terminal or in a file each line reads ``time LEVEL logger: message``.
Under systemd, stderr is a stream into journald: ``$JOURNAL_STREAM`` names
it (``device:inode``). journald reads a ``<N>`` syslog priority at the start
of each line (sd-daemon(3)); without it every line lands at the unit's
default priority and ``journalctl -p err`` finds nothing. There the lines
carry that prefix and no time (journald stamps each entry itself).

The variable is inherited by children whose stderr goes elsewhere (a test
harness, a shell started from a service), so the prefix is used only when
stderr really is the stream it names, as sd_journal_stream_fd(3) advises.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

JOURNAL_STREAM = "JOURNAL_STREAM"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s %(name)s: %(message)s"

# Python level -> syslog priority (sd-daemon.h SD_CRIT .. SD_DEBUG); Python
# has no NOTICE (5). The highest level a record reaches decides.
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7


def syslog_priority(levelno: int) -> int:
    """The syslog priority of a Python log level: ERROR is 3, so ``journalctl -p err``."""
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return _DEBUG_PRIORITY


class JournalFormatter(logging.Formatter):
    """Every line of a record prefixed ``<N>``: journald splits a traceback into
    one entry per line, and each must keep the record's priority."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        return with_priority(super().format(record), record.levelno)


def with_priority(text: str, levelno: int) -> str:
    """Each line of ``text`` prefixed ``<N>``, the syslog priority of ``levelno``."""
    prefix = f"<{syslog_priority(levelno)}>"
    return "\n".join(prefix + line for line in text.splitlines())


def to_journal(stream: TextIO, environ: Mapping[str, str] | None = None) -> bool:
    """True when ``stream`` is the journald stream ``$JOURNAL_STREAM`` names."""
    value = (os.environ if environ is None else environ).get(JOURNAL_STREAM, "")
    device, _, inode = value.partition(":")
    if not (device.isdigit() and inode.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError):  # no file descriptor (a test's StringIO), or closed
        return False
    return (st.st_dev, st.st_ino) == (int(device), int(inode))


def print_error(text: str, stream: TextIO | None = None) -> None:
    """A command's last word on why it failed (``callrec serve: config ...``), on stderr.

    Not a log record, but under systemd it is the line an admin looks for
    with ``journalctl -p err``, so it carries the ERROR priority there too.
    """
    out = sys.stderr if stream is None else stream
    print(with_priority(text, logging.ERROR) if to_journal(out) else text, file=out)


def setup_logging(level: int, stream: TextIO | None = None) -> None:
    """Send log records of ``level`` and above to ``stream`` (stderr), formatted for it."""
    out = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        JournalFormatter() if to_journal(out) else logging.Formatter(PLAIN_FORMAT)
    )
    logging.basicConfig(level=level, handlers=[handler])


def verbosity_level(verbose: int, quiet: int) -> int:
    """``-q`` ERROR, none WARNING, ``-v`` INFO, ``-vv`` DEBUG (each ``-q`` cancels a ``-v``)."""
    net = verbose - quiet
    if net < 0:
        return logging.ERROR
    return (logging.WARNING, logging.INFO)[net] if net < 2 else logging.DEBUG
