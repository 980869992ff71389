"""The control socket's protocol: one JSON object per line, each way.

``callrec calls`` (a CRM, an agent desktop) sends one request per line and
reads one reply line for each, over the Unix socket of ``[control] socket``
that ``callrec serve`` listens on (:mod:`ari_app.control`)::

    {"op": "list"}                        {"ok": true, "calls": [{...}, ...]}
    {"op": "pause", "call": "ID"}         {"ok": true, "call": "ID", "paused": true,
    {"op": "resume", "call": "ID"}          "changed": true}
    anything wrong                        {"ok": false, "error": "what was wrong"}

``ID`` is the caller's channel id (Asterisk's uniqueid), the call's linkedid,
the agent's channel id, the recording id or, for a dialplan (FastAGI)
recording, its ``CALLREC_ID``, as ``list`` shows them (each row says its
``frontend``: ``ari`` or ``agi``). A request
line is at most :data:`MAX_REQUEST` bytes, a reply at most :data:`MAX_REPLY`.
Sans-IO: the server and the client bring their own sockets.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from callrec.errors import CallrecError

MAX_REQUEST = 4096
MAX_REPLY = 1 << 20
# Channel ids, linkedids and recording ids: no spaces, nothing a terminal acts on.
_CALL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


class Op(StrEnum):
    LIST = "list"
    PAUSE = "pause"
    RESUME = "resume"


class ControlError(CallrecError):
    """A request or reply the other side cannot use, in words (``message``)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Request:
    op: Op
    call: str | None = None

    def encode(self) -> bytes:
        body: dict[str, Any] = {"op": str(self.op)}
        if self.call is not None:
            body["call"] = self.call
        return encode(body)


def encode(message: dict[str, Any]) -> bytes:
    """One line: compact JSON, ASCII only (nothing a terminal acts on), newline."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def parse_request(line: bytes) -> Request:
    """A request line, or :class:`ControlError` saying what is wrong with it."""
    message = _object(line, "request")
    op = message.get("op")
    if op not in tuple(Op):
        raise ControlError(f"op must be one of {', '.join(Op)}, not {_shown(op)}")
    keys = {"op"} if op == Op.LIST else {"op", "call"}
    extra = sorted(set(message) - keys)
    if extra:
        raise ControlError(f"{op} takes no {', '.join(extra)}")
    if op == Op.LIST:
        return Request(Op.LIST)
    call = message.get("call")
    if not isinstance(call, str) or not _CALL_ID.fullmatch(call):
        raise ControlError(
            f"{op} needs a call id (as `callrec calls list` shows), not {_shown(call)}"
        )
    return Request(Op(op), call)


def parse_reply(line: bytes) -> dict[str, Any]:
    """A reply line; :class:`ControlError` with the server's words when it says not ok."""
    message = _object(line, "reply")
    if message.get("ok") is not True:
        error = message.get("error")
        raise ControlError(str(error) if isinstance(error, str) else "the server refused")
    return message


def error_reply(error: str) -> bytes:
    return encode({"ok": False, "error": error})


def _object(line: bytes, what: str) -> dict[str, Any]:
    try:
        message = json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ControlError(f"the {what} is not one line of JSON") from None
    if not isinstance(message, dict):
        raise ControlError(f"the {what} is not a JSON object")
    return message


def _shown(value: object) -> str:
    if value is None:
        return "nothing"
    return repr(value)[:60] if isinstance(value, str) else type(value).__name__
