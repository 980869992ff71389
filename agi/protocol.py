"""The AGI wire protocol, as Asterisk's ``res_agi.c`` speaks it.

Asterisk opens with an environment block (``agi_key: value`` lines ended by
a blank line), then answers each command line with one response:
``200 result=N [(data)] [key=value ...]``, ``510`` (unknown command), ``511``
(not permitted on a dead channel) or ``520`` (usage; multi-line as
``520-...`` ... ``520 End of proper usage.``). On a FastAGI socket a hang-up
shows as a ``HANGUP`` line that may arrive before any response, and as
``result=-1`` from the command that was running. Each maps to one class of
:mod:`callrec.errors` so callers handle a hang-up in one place.

The parsers are pure (fed one line at a time) so the FastAGI server and the
classic agi-bin script share them; :class:`AgiConnection` runs them over
asyncio streams.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from callrec.errors import (
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiUsageError,
)
from callrec.logutil import safe

logger = logging.getLogger(__name__)

# Asterisk reads a command into a 2048-byte buffer (AGI_BUF_LEN) and cuts the
# rest; a cut command would run with wrong arguments, so refuse to send one.
MAX_COMMAND_BYTES = 2047
# Bounds on what we accept from the peer, so a broken client cannot make us
# buffer without end. Caller names are cut at 79 characters by Asterisk.
MAX_LINE_BYTES = 8192
MAX_ENV_LINES = 256
MAX_USAGE_LINES = 64
# One reply is a 200 line, maybe after a HANGUP line, or a 520 usage block.
MAX_RESPONSE_LINES = MAX_USAGE_LINES + 8
# What a result= or endpos= can hold: a digit, an offset in samples.
_MAX_NUMBER_DIGITS = 18
# The sixteen DTMF keys (RFC 4733); any other result is not a key press.
DTMF_DIGITS = frozenset("0123456789*#ABCD")

HANGUP_LINE = "HANGUP"
ENV_CONTEXT = "(environment)"

_ENV_KEY = re.compile(r"agi_[a-z0-9_]+")
_RESPONSE_200 = re.compile(
    rf"200 result=(-?[0-9]{{1,{_MAX_NUMBER_DIGITS}}})(?: \((.*)\))?((?: [a-z_]+=\S*)*)"
)
_NUMBER = re.compile(rf"-?[0-9]{{1,{_MAX_NUMBER_DIGITS}}}")
_KEY_VALUE = re.compile(r" ([a-z_]+)=(\S*)")
_COMMAND_WORD = re.compile(r"[A-Z]+(?: [A-Z]+)*")


class AgiProtocolError(AgiError):
    """The peer sent something that is not AGI (bad line, oversize, unknown code)."""


class AgiTimeout(AgiProtocolError):
    """No reply within the read timeout: the peer went silent, the session ends."""


# --- environment ----------------------------------------------------------


class AgiEnvironment:
    """The ``agi_*`` variables Asterisk sends before the first command.

    Values are kept exactly as received: they carry caller-controlled text
    (``agi_calleridname``), so use them only through :func:`safe` in logs and
    never in a path.
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    def get(self, key: str, default: str = "") -> str:
        return self._values.get(key, default)

    @property
    def network_script(self) -> str:
        """The FastAGI script path without its query (``consent`` for .../consent?x)."""
        script = self.get("agi_network_script")
        return script.split("?", 1)[0].strip("/")

    @property
    def args(self) -> list[str]:
        """``agi_arg_1`` .. ``agi_arg_N`` in order."""
        out: list[str] = []
        while f"agi_arg_{len(out) + 1}" in self._values:
            out.append(self._values[f"agi_arg_{len(out) + 1}"])
        return out

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def language(self) -> str:
        return self.get("agi_language")

    @property
    def callerid(self) -> str:
        return self.get("agi_callerid")

    @property
    def calleridname(self) -> str:
        return self.get("agi_calleridname")

    @property
    def extension(self) -> str:
        return self.get("agi_extension")

    @property
    def dnid(self) -> str:
        return self.get("agi_dnid")


class EnvironmentParser:
    """Collects ``agi_key: value`` lines until the blank line that ends the block."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}
        self._lines = 0
        self.done = False

    def feed(self, line: str) -> bool:
        """Take one line (without its newline); True once the block is complete."""
        if self.done:
            raise AgiProtocolError(ENV_CONTEXT, "line after the end of the environment")
        if line == "":
            self.done = True
            return True
        self._lines += 1
        if self._lines > MAX_ENV_LINES:
            raise AgiProtocolError(ENV_CONTEXT, f"more than {MAX_ENV_LINES} lines")
        key, sep, value = line.partition(":")
        if not sep or not _ENV_KEY.fullmatch(key):
            raise AgiProtocolError(ENV_CONTEXT, f"not an agi_ variable: {safe(line)}")
        # Asterisk writes "key: value"; an empty value still has its space.
        self._values[key] = value[1:] if value.startswith(" ") else value
        return False

    def environment(self) -> AgiEnvironment:
        return AgiEnvironment(self._values)


def parse_environment(lines: list[str]) -> AgiEnvironment:
    """Parse a whole environment block (lines without newlines, blank line last)."""
    parser = EnvironmentParser()
    for line in lines:
        if parser.feed(line):
            return parser.environment()
    raise AgiHangup(ENV_CONTEXT, "connection closed in the environment block")


# --- commands -------------------------------------------------------------


def quote_argument(arg: str | int) -> str:
    """One argument as Asterisk's ``parse_args`` reads it back unchanged.

    Always double-quoted, with backslash and double quote escaped by a
    backslash; a line break cannot be escaped (it ends the command), nor can
    NUL (it ends Asterisk's C string), so both are refused.
    """
    text = str(arg)
    if any(c in text for c in "\r\n\0"):
        raise AgiUsageError(safe(text), "argument contains a line break or NUL")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(command: str, *args: str | int) -> str:
    """The command line to send, newline included; arguments quoted."""
    if not _COMMAND_WORD.fullmatch(command):
        raise AgiUsageError(safe(command), "command must be upper-case words")
    line = " ".join([command, *(quote_argument(a) for a in args)]) + "\n"
    if len(line.encode()) - 1 > MAX_COMMAND_BYTES:
        raise AgiUsageError(command, f"command longer than {MAX_COMMAND_BYTES} bytes")
    return line


# --- responses ------------------------------------------------------------


@dataclass(frozen=True)
class AgiResponse:
    """A ``200`` response: ``result``, the optional ``(data)`` and ``key=value`` extras."""

    result: int
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def endpos(self) -> int | None:
        value = self.extra.get("endpos")
        return int(value) if value is not None and _NUMBER.fullmatch(value) else None

    @property
    def digit(self) -> str:
        """The DTMF key in ``result`` (STREAM FILE, WAIT FOR DIGIT), or "".

        Only the sixteen DTMF keys count: ``result=1`` is not the digit "\\x01".
        """
        key = chr(self.result) if 0 < self.result < 128 else ""
        return key if key in DTMF_DIGITS else ""


def parse_200(command: str, line: str) -> AgiResponse:
    """Parse a ``200 result=...`` line; the data in parentheses may hold anything."""
    match = _RESPONSE_200.fullmatch(line)
    if match is None:
        raise AgiProtocolError(command, f"malformed response: {safe(line)}")
    result, data, rest = match.groups()
    return AgiResponse(int(result), data, dict(_KEY_VALUE.findall(rest)))


class ResponseParser:
    """Reads the response to one command, line by line.

    ``feed`` returns the :class:`AgiResponse` once complete, ``None`` while
    more lines are needed, and raises the error class of a 510/511/520 once
    that response is complete (so the stream stays in step). A ``HANGUP``
    line is noted and the command's own response still read; then
    :class:`AgiHangup` is raised, unless the channel was already known to be
    dead (``hung_up``). ``result=-1`` raises :class:`AgiHangup` too.
    """

    def __init__(self, command: str, *, hung_up: bool = False) -> None:
        self.command = command
        self.hangup_seen = False
        # A HANGUP line after a channel is known dead (it trails result=-1)
        # is news to no one: dead-channel commands still answer normally.
        self._known_dead = hung_up
        self._usage: list[str] | None = None
        self._lines = 0

    def feed(self, line: str) -> AgiResponse | None:
        self._lines += 1
        if self._lines > MAX_RESPONSE_LINES:  # e.g. HANGUP lines without end
            raise AgiProtocolError(self.command, f"no reply in {MAX_RESPONSE_LINES} lines")
        if self._usage is not None:
            return self._feed_usage(line)
        if line == HANGUP_LINE:
            self.hangup_seen = True
            return None
        code = line[:3]
        if code == "200":
            response = parse_200(self.command, line)
            if response.result == -1:
                raise AgiHangup(self.command, "result=-1 (hang-up or failure)")
            if self.hangup_seen and not self._known_dead:
                raise AgiHangup(self.command, "channel hung up (HANGUP)")
            return response
        if code == "510":
            raise AgiInvalidCommand(self.command, line[4:] or "invalid or unknown command")
        if code == "511":
            raise AgiDeadChannel(self.command, line[4:] or "dead channel")
        if line.startswith("520-"):
            self._usage = [line[4:]]
            return None
        if code == "520":
            raise AgiUsageError(self.command, line[4:] or "invalid command syntax")
        raise AgiProtocolError(self.command, f"unexpected line: {safe(line)}")

    def _feed_usage(self, line: str) -> AgiResponse | None:
        assert self._usage is not None
        if line.startswith("520 "):
            raise AgiUsageError(self.command, "\n".join(self._usage))
        self._usage.append(line)
        if len(self._usage) > MAX_USAGE_LINES:
            raise AgiProtocolError(self.command, f"520 usage longer than {MAX_USAGE_LINES} lines")
        return None


def decode_line(raw: bytes, context: str) -> str:
    """One received line without its line ending; invalid UTF-8 becomes U+FFFD."""
    if not raw.endswith(b"\n"):
        if len(raw) >= MAX_LINE_BYTES:
            raise AgiProtocolError(context, f"line longer than {MAX_LINE_BYTES} bytes")
        raise AgiHangup(context, "connection closed before the response ended")
    return raw.rstrip(b"\n").removesuffix(b"\r").decode("utf-8", "replace")


# --- command helpers, shared by every transport -----------------------------


class AgiCommands(abc.ABC):
    """The AGI commands callrec uses, over any transport that can ``execute``."""

    hung_up: bool = False

    @abc.abstractmethod
    async def execute(self, command: str, *args: str | int) -> AgiResponse:
        """Send one command and return its response (raising the mapped errors)."""

    async def answer(self) -> None:
        await self.execute("ANSWER")

    async def set_variable(self, name: str, value: str) -> None:
        await self.execute("SET VARIABLE", name, value)

    async def get_variable(self, name: str) -> str | None:
        """The variable's value, or None when it is not set (``result=0``)."""
        response = await self.execute("GET VARIABLE", name)
        return response.data if response.result == 1 else None

    async def set_variable_quietly(self, name: str, value: str) -> bool:
        """SET VARIABLE as a last word: once the socket is gone there is nobody to tell."""
        try:
            await self.set_variable(name, value)
        except AgiError as exc:
            logger.info("could not set %s: %s", name, safe(str(exc)))
            return False
        return True

    async def get_variable_quietly(self, name: str) -> str | None:
        """GET VARIABLE, with None for unset and for any AGI error alike."""
        try:
            return await self.get_variable(name)
        except AgiError:
            return None

    async def stream_file(self, name: str, escape_digits: str = "") -> AgiResponse:
        """Play ``name`` (no extension); ``.digit`` is the escape digit pressed, if any.

        Not CONTROL STREAM FILE: there ``*`` and ``#`` rewind and skip by
        default, and nobody may fast-forward through the disclosure.
        """
        return await self.execute("STREAM FILE", name, escape_digits)

    async def wait_for_digit(self, timeout_ms: int) -> str:
        """The digit pressed within ``timeout_ms``, or "" on timeout."""
        return (await self.execute("WAIT FOR DIGIT", timeout_ms)).digit

    async def channel_status(self) -> int:
        return (await self.execute("CHANNEL STATUS")).result


class AgiConnection(AgiCommands):
    """One AGI session over asyncio streams (a FastAGI socket)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        read_timeout: float | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        # Per line read: a peer that goes silent ends the session (AgiTimeout).
        self._read_timeout = read_timeout
        self._silent: str | None = None  # why, once a reply never came
        self._lock = asyncio.Lock()
        self.hung_up = False
        self.closed = False
        self.busy = False

    async def read_environment(self) -> AgiEnvironment:
        parser = EnvironmentParser()
        while True:
            raw = await self._readline(ENV_CONTEXT)
            if not raw:
                raise AgiHangup(ENV_CONTEXT, "connection closed in the environment block")
            if parser.feed(decode_line(raw, ENV_CONTEXT)):
                return parser.environment()

    async def execute(self, command: str, *args: str | int) -> AgiResponse:
        line = format_command(command, *args)
        async with self._lock:
            if self._silent is not None:  # not a hang-up: the policy's failure
                raise AgiTimeout(command, self._silent)
            if self.closed:
                raise AgiHangup(command, "connection closed")
            # Stays set if this task is cancelled mid-command: the stream is
            # then out of step and must not carry another command.
            self.busy = True
            try:
                self._writer.write(line.encode())
                await self._writer.drain()
            except (ConnectionError, OSError) as exc:
                self._mark_closed()
                raise AgiHangup(command, "connection closed") from exc
            try:
                response = await self._read_response(ResponseParser(command, hung_up=self.hung_up))
            except AgiError:
                self.busy = False
                raise
            self.busy = False
            return response

    async def _read_response(self, parser: ResponseParser) -> AgiResponse:
        try:
            while True:
                raw = await self._readline(parser.command)
                if not raw:
                    raise AgiHangup(parser.command, "connection closed before a response")
                response = parser.feed(decode_line(raw, parser.command))
                if parser.hangup_seen:
                    self.hung_up = True
                if response is not None:
                    break
        except AgiHangup:
            self.hung_up = True
            raise
        return response

    async def _readline(self, context: str) -> bytes:
        try:
            async with asyncio.timeout(self._read_timeout):
                return await self._reader.readuntil(b"\n")
        except TimeoutError:
            self._mark_closed()  # a reply may still come: the stream is out of step
            self._silent = f"no reply within {self._read_timeout:g} s"
            raise AgiTimeout(context, self._silent) from None
        except asyncio.IncompleteReadError as exc:
            self._mark_closed()
            if exc.partial:
                raise AgiHangup(context, "connection closed in the middle of a line") from None
            return b""
        except asyncio.LimitOverrunError as exc:
            self._mark_closed()
            raise AgiProtocolError(context, f"line longer than {MAX_LINE_BYTES} bytes") from exc
        except (ConnectionError, OSError):
            self._mark_closed()
            return b""

    async def settle(self, limit: float) -> bool:
        """After a cancelled command, read its reply so the stream is in step again.

        False when it does not come within ``limit`` seconds (a long prompt
        still playing) or the socket closed: then nothing more may be sent.
        """
        if not self.busy:
            return not self.closed
        parser = ResponseParser("(settle)", hung_up=True)
        try:
            async with asyncio.timeout(limit):
                while not await self._settle_line(parser):
                    pass
        except (TimeoutError, AgiError):
            return False
        self.busy = False
        return True

    async def _settle_line(self, parser: ResponseParser) -> bool:
        raw = await self._readline(parser.command)
        if not raw:
            raise AgiHangup(parser.command, "connection closed")
        try:
            return parser.feed(decode_line(raw, parser.command)) is not None
        except (AgiInvalidCommand, AgiDeadChannel, AgiUsageError, AgiHangup):
            return True  # a complete reply, whatever it said

    def _mark_closed(self) -> None:
        self.closed = True
        self.hung_up = True

    async def close(self) -> None:
        """Close the socket; Asterisk then carries on with the dialplan."""
        self.closed = True
        self._writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
