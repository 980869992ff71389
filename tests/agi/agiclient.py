"""A FastAGI client that speaks as Asterisk 22's res_agi.c does, over real TCP.

It connects to a FastAGI server, sends the environment block, reads command
lines (split with a port of Asterisk's ``parse_args``), and answers from a
small channel model: a caller who stays, hangs up at a given time, or presses
a digit. Responses are the real ones: ``200 result=N endpos=M``, ``510``,
``511`` on a dead channel, multi-line ``520``, ``result=-1`` followed by a
``HANGUP`` line when the caller hangs up in the middle of a command. Time the
channel spends (a prompt playing, WAIT FOR DIGIT timing out) advances the
test's ManualClock, so consent tests never sleep.

Like Asterisk, it keeps the socket open after a hang-up until the server
closes it (dead-channel commands such as SET VARIABLE still work), and it
can also close the socket in the middle of a command or of a line.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from callrec.clock import ManualClock

# Commands Asterisk allows on a dead channel (res_agi.c, "dead" flag set).
DEAD_OK = {
    "SET VARIABLE",
    "GET VARIABLE",
    "GET FULL VARIABLE",
    "VERBOSE",
    "NOOP",
    "DATABASE GET",
    "DATABASE PUT",
}
USAGE = {
    "STREAM FILE": " Usage: STREAM FILE <filename> <escape_digits> [sample offset]",
    "CONTROL STREAM FILE": " Usage: CONTROL STREAM FILE <filename> <escape digits> [skipms]",
    "WAIT FOR DIGIT": " Usage: WAIT FOR DIGIT <timeout>",
    "SET VARIABLE": " Usage: SET VARIABLE <variablename> <value>",
    "GET VARIABLE": " Usage: GET VARIABLE <variablename>",
}
ARGC = {
    "ANSWER": (0, 0),
    "STREAM FILE": (2, 3),
    "CONTROL STREAM FILE": (2, 7),
    "WAIT FOR DIGIT": (1, 1),
    "SET VARIABLE": (2, 2),
    "GET VARIABLE": (1, 1),
    "CHANNEL STATUS": (0, 1),
    "VERBOSE": (1, 2),
    "NOOP": (0, 99),
    "HANGUP": (0, 1),
}
SAMPLE_RATE = 8000


def asterisk_env_block(overrides: dict[str, str] | None = None) -> bytes:
    """The environment block in the order Asterisk 22 writes it."""
    env = {
        "agi_network": "yes",
        "agi_network_script": "consent",
        "agi_request": "",
        "agi_channel": "PJSIP/caller-0000001d",
        "agi_language": "en",
        "agi_type": "PJSIP",
        "agi_uniqueid": "1795915759.31",
        "agi_version": "22.11.0",
        "agi_callerid": "+4930123456",
        "agi_calleridname": "sipp",
        "agi_callingpres": "0",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": "100",
        "agi_rdnis": "unknown",
        "agi_context": "from-caller",
        "agi_extension": "100",
        "agi_priority": "2",
        "agi_enhanced": "0.0",
        "agi_accountcode": "",
        "agi_threadid": "140245106652736",
    }
    env.update(overrides or {})
    if not env["agi_request"]:
        env["agi_request"] = "agi://127.0.0.1:4573/" + env["agi_network_script"]
    return "".join(f"{k}: {v}\n" for k, v in env.items()).encode() + b"\n"


def parse_args(line: str) -> list[str]:
    """Asterisk's res_agi.c ``parse_args``: quotes group, backslash escapes."""
    args: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
                args.append("")
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                args[-1] = "".join(cur)
            cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            cur = []
            args.append("")
        cur.append(ch)
        escaped = False
    if cur is not None:
        args[-1] = "".join(cur)
    return args


@dataclass
class Caller:
    """What the caller does, in channel time since the first command."""

    hangup_at: float | None = None
    digit: str | None = None
    digit_at: float | None = None
    # Close the socket instead of answering command number N (1-based), or
    # after sending only ``cut_bytes`` of that response.
    close_at_command: int | None = None
    cut_bytes: int = 0
    # AGIEXITONHANGUP=yes: Asterisk closes the socket right after HANGUP.
    exit_on_hangup: bool = False
    # A peer that goes silent: command number N (1-based) is never answered,
    # and the socket stays open until the server closes it.
    stall_at_command: int | None = None
    # A broken or hostile peer: every WAIT FOR DIGIT answered with result=N
    # after this many seconds of channel time.
    wait_answer: tuple[int, float] | None = None


@dataclass
class ChannelModel:
    """The channel behind the AGI session: variables, sounds, hang-up state."""

    caller: Caller = field(default_factory=Caller)
    sounds: dict[str, float] = field(default_factory=dict)  # name -> seconds
    clock: ManualClock | None = None
    variables: dict[str, str] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)
    now: float = 0.0
    dead: bool = False
    answered: bool = False
    # Really wait the time the channel spends (for gates on the system clock).
    realtime: bool = False

    def spend(self, seconds: float) -> None:
        self.now += seconds
        if self.clock is not None:
            self.clock.advance(seconds)

    def respond(self, argv: list[str]) -> list[str]:
        name, args = _split_command(argv)
        if name is None:
            return ["510 Invalid or unknown command"]
        low, high = ARGC[name]
        if not low <= len(args) <= high:
            usage = USAGE.get(name)
            if usage is None:
                return ["520 Invalid command syntax.  Proper usage not available."]
            return [
                "520-Invalid command syntax.  Proper usage follows:",
                usage,
                "520 End of proper usage.",
            ]
        # A hang-up between commands: Asterisk's AGI loop notices it and writes
        # HANGUP before it reads the next command.
        prefix: list[str] = []
        hangup_at = self.caller.hangup_at
        if not self.dead and hangup_at is not None and hangup_at <= self.now:
            self.dead = True
            prefix = ["HANGUP"]
        if self.dead and name not in DEAD_OK:
            return [*prefix, "511 Command Not Permitted on a dead channel or intercept routine"]
        return [*prefix, *getattr(self, "_" + name.lower().replace(" ", "_"))(args)]

    # -- commands --

    def _answer(self, args: list[str]) -> list[str]:
        self.answered = True
        return ["200 result=0"]

    def _set_variable(self, args: list[str]) -> list[str]:
        self.variables[args[0]] = args[1]
        return ["200 result=1"]

    def _get_variable(self, args: list[str]) -> list[str]:
        if args[0] not in self.variables:
            return ["200 result=0"]
        return [f"200 result=1 ({self.variables[args[0]]})"]

    def _verbose(self, args: list[str]) -> list[str]:
        return ["200 result=1"]

    def _noop(self, args: list[str]) -> list[str]:
        return ["200 result=0"]

    def _hangup(self, args: list[str]) -> list[str]:
        self.dead = True
        return ["200 result=1", "HANGUP"]

    def _channel_status(self, args: list[str]) -> list[str]:
        return ["200 result=6"]

    def _stream_file(self, args: list[str]) -> list[str]:
        return self._play(args[0], args[1])

    def _control_stream_file(self, args: list[str]) -> list[str]:
        return self._play(args[0], args[1])

    def _wait_for_digit(self, args: list[str]) -> list[str]:
        if self.caller.wait_answer is not None:
            result, seconds = self.caller.wait_answer
            self.spend(seconds)
            return [f"200 result={result}"]
        timeout = int(args[0]) / 1000
        event, at = self._next_event(self.now + timeout)
        self.spend(max(at - self.now, 0.0))
        if event == "hangup":
            self.dead = True
            return ["200 result=-1", "HANGUP"]
        if event == "digit":
            assert self.caller.digit is not None
            self._consume_digit()
            return [f"200 result={ord(self.caller.digit)}"]
        return ["200 result=0"]

    def _play(self, name: str, escape: str) -> list[str]:
        if name not in self.sounds:
            return ["200 result=-1 endpos=0"]
        length = self.sounds[name]
        start = self.now
        event, at = self._next_event(start + length, escape)
        self.spend(max(at - self.now, 0.0))
        endpos = int((self.now - start) * SAMPLE_RATE)
        if event == "hangup":
            self.dead = True
            return [f"200 result=-1 endpos={endpos}", "HANGUP"]
        if event == "digit":
            assert self.caller.digit is not None
            self._consume_digit()
            return [f"200 result={ord(self.caller.digit)} endpos={endpos}"]
        return [f"200 result=0 endpos={endpos}"]

    def _next_event(self, until: float, escape: str | None = None) -> tuple[str, float]:
        """The first of hang-up, (escape) digit, or ``until``, with its time."""
        events = [("end", until)]
        c = self.caller
        if c.hangup_at is not None and c.hangup_at <= until:
            events.append(("hangup", max(c.hangup_at, self.now)))
        if c.digit is not None and c.digit_at is not None and c.digit_at <= until:
            if escape is None or c.digit in escape:
                events.append(("digit", max(c.digit_at, self.now)))
            elif c.digit_at >= self.now:
                # A digit that is not an escape digit is swallowed by the playback.
                pass
        return min(events, key=lambda e: (e[1], e[0] != "hangup"))

    def _consume_digit(self) -> None:
        self.caller.digit_at = None


def _split_command(argv: list[str]) -> tuple[str | None, list[str]]:
    for words in (3, 2, 1):
        name = " ".join(argv[:words]).upper()
        if name in ARGC:
            return name, argv[words:]
    return None, []


class FakeAsterisk:
    """Runs one AGI session against a FastAGI server, as Asterisk would."""

    def __init__(self, host: str, port: int, env: dict[str, str], model: ChannelModel) -> None:
        self.host = host
        self.port = port
        self.env = env
        self.model = model
        self.raw_commands: list[bytes] = []
        self.closed_by_server = False

    async def run(self) -> ChannelModel:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        writer.write(asterisk_env_block(self.env))
        await writer.drain()
        try:
            await self._serve(reader, writer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
        return self.model

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        count = 0
        while True:
            raw = await reader.readline()
            if not raw:
                self.closed_by_server = True
                return
            self.raw_commands.append(raw)
            count += 1
            argv = parse_args(raw.decode().rstrip("\n"))
            self.model.commands.append(argv)
            if self.model.caller.stall_at_command == count:
                self.closed_by_server = not await reader.read()  # EOF: the server gave up
                return
            before = self.model.now
            lines = self.model.respond(argv)
            if self.model.realtime:
                await asyncio.sleep(self.model.now - before)
            data = "".join(line + "\n" for line in lines).encode()
            if self.model.caller.close_at_command == count:
                writer.write(data[: self.model.caller.cut_bytes])
                await writer.drain()
                return
            writer.write(data)
            await writer.drain()
            if "HANGUP" in lines and self.model.caller.exit_on_hangup:
                return


async def run_session(
    port: int,
    env: dict[str, str] | None = None,
    model: ChannelModel | None = None,
    limit: float = 10.0,
) -> tuple[FakeAsterisk, ChannelModel]:
    """Connect to 127.0.0.1:``port``, run one AGI session, return the model after it."""
    client = FakeAsterisk("127.0.0.1", port, env or {}, model or ChannelModel())
    done = await asyncio.wait_for(client.run(), limit)
    return client, done
