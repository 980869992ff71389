"""Log lines that caller data cannot forge, and caller numbers kept out of them.

Caller ids and channel variables are caller-controlled: a name with a
newline could fake a second log line, an escape sequence could rewrite a
terminal. :func:`safe` escapes them the way ``repr`` does (without the
surrounding quotes) and bounds their length; :func:`mask_number` leaves only
enough of a number to tell calls apart.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_QUOTES = "'\""
_ELLIPSIS = "…"
_MASK = "•••"


def _escape(char: str, quotes: str = _QUOTES) -> str:
    if char in _ESCAPES:
        return _ESCAPES[char]
    if char in _QUOTES:
        return "\\" + char if char in quotes else char
    if char.isprintable():  # False for C0/C1 controls, DEL, bidi overrides, separators
        return char
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape(text: str, quotes: str = _QUOTES) -> str:
    """``text`` escaped like :func:`safe`, whatever its length.

    Only the quote characters in ``quotes`` are escaped: a command line
    printing a path unquoted passes ``""``, one quoting a value with ``"``
    passes ``'"'``.
    """
    return "".join(_escape(char, quotes) for char in text)


def safe(text: str, limit: int = 80) -> str:
    """``text`` escaped like ``repr`` without quotes, at most ``limit`` characters.

    A cut is marked with ``…`` and never splits an escape sequence.
    """
    out: list[str] = []
    size = 0
    for char in text:
        piece = _escape(char)
        if size + len(piece) > limit:
            while out and size + len(_ELLIPSIS) > limit:
                size -= len(out.pop())
            return "".join(out) + _ELLIPSIS
        out.append(piece)
        size += len(piece)
    return "".join(out)


def mask_number(number: str) -> str:
    """A caller number for log lines, e.g. ``+4930123456`` -> ``+49301•••56``.

    Numbers of more than 6 characters (a leading ``+`` not counted) keep at
    most their first 5 and last 2, and always hide at least 3; shorter ones
    are masked entirely. The mask has a fixed width, so it does not reveal
    the length either. The result is escaped with :func:`safe`.
    """
    plus = "+" if number.startswith("+") else ""
    digits = number[len(plus) :]
    if len(digits) <= 6:
        return safe(plus + _MASK)
    head = min(5, len(digits) - 2 - 3)
    return safe(plus + digits[:head] + _MASK + digits[-2:], limit=40)


class CallLogAdapter(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the call's channel id, as ``[<id>] message``."""

    def __init__(self, logger: logging.Logger, channel_id: str) -> None:
        self.channel_id = safe(channel_id, 64)
        super().__init__(logger, {"channel_id": self.channel_id})

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        # The escaped id also goes into ``extra`` for handlers that format %(channel_id)s.
        kwargs["extra"] = {**(kwargs.get("extra") or {}), "channel_id": self.channel_id}
        return f"[{self.channel_id}] {msg}", kwargs
