"""The AGI wire protocol: environment block, command quoting, every response form.

Lines are the ones Asterisk 22's res_agi.c writes; truncations are looped
over every length, as a socket can be cut anywhere.
"""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agi.protocol import (
    DTMF_DIGITS,
    MAX_COMMAND_BYTES,
    MAX_RESPONSE_LINES,
    AgiConnection,
    AgiProtocolError,
    AgiResponse,
    AgiTimeout,
    EnvironmentParser,
    ResponseParser,
    format_command,
    parse_environment,
    quote_argument,
)
from callrec.errors import (
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    AgiInvalidCommand,
    AgiUsageError,
)
from tests.agi.agiclient import asterisk_env_block, parse_args

ENV = asterisk_env_block(
    {
        "agi_network_script": "consent?lang=de",
        "agi_uniqueid": "1795915872.47",
        "agi_callerid": "+4930123456",
        "agi_calleridname": 'Robert\\"); DROP TABLE calls;-- <b>x</b>',
        "agi_accountcode": "",
        "agi_arg_1": "100",
        "agi_arg_2": "a b: c",
    }
)


def feed_all(parser: ResponseParser, lines: list[str]) -> AgiResponse | None:
    result = None
    for line in lines:
        result = parser.feed(line)
    return result


# --- environment ----------------------------------------------------------


def test_environment_block_as_asterisk_sends_it() -> None:
    lines = ENV.decode().split("\n")[:-1]
    env = parse_environment(lines)
    assert env.network_script == "consent"
    assert env.uniqueid == "1795915872.47"
    assert env.calleridname == 'Robert\\"); DROP TABLE calls;-- <b>x</b>'
    assert env.get("agi_accountcode") == ""
    assert env.get("agi_request") == "agi://127.0.0.1:4573/consent?lang=de"
    assert env.args == ["100", "a b: c"]
    assert env.language == "en"


def test_environment_cut_anywhere_is_a_hangup() -> None:
    lines = ENV.decode().split("\n")[:-1]
    for n in range(len(lines)):
        with pytest.raises(AgiHangup, match="connection closed in the environment block"):
            parse_environment(lines[:n])


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("agi_channel PJSIP/x", "not an agi_ variable: agi_channel PJSIP/x"),
        ("200 result=0", "not an agi_ variable: 200 result=0"),
        ("AGI_CHANNEL: x", "not an agi_ variable: AGI_CHANNEL: x"),
    ],
)
def test_environment_rejects_lines_that_are_not_variables(line: str, message: str) -> None:
    parser = EnvironmentParser()
    with pytest.raises(AgiProtocolError, match=message.replace("(", r"\(")):
        parser.feed(line)


def test_environment_has_a_line_limit() -> None:
    parser = EnvironmentParser()
    for n in range(256):
        parser.feed(f"agi_arg_{n}: x")
    with pytest.raises(AgiProtocolError, match="more than 256 lines"):
        parser.feed("agi_arg_256: x")


# --- commands -------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "args", "line"),
    [
        ("ANSWER", (), "ANSWER\n"),
        ("STREAM FILE", ("/var/lib/callrec/en/disclosure", "2"), None),
        (
            "SET VARIABLE",
            ("CALLREC_CONSENT", "implied"),
            'SET VARIABLE "CALLREC_CONSENT" "implied"\n',
        ),
        ("WAIT FOR DIGIT", (1500,), 'WAIT FOR DIGIT "1500"\n'),
        ("VERBOSE", ('say "hi" \\ there', 3), 'VERBOSE "say \\"hi\\" \\\\ there" "3"\n'),
        ("STREAM FILE", ("x", ""), 'STREAM FILE "x" ""\n'),
    ],
)
def test_format_command(command: str, args: tuple[str | int, ...], line: str | None) -> None:
    sent = format_command(command, *args)
    if line is not None:
        assert sent == line
    assert parse_args(sent.rstrip("\n")) == [*command.split(), *map(str, args)]


@given(st.text(st.characters(codec="utf-8", exclude_characters="\r\n\0")))
def test_any_argument_survives_asterisk_parse_args(text: str) -> None:
    line = format_command("SET VARIABLE", "X", text)
    assert parse_args(line.rstrip("\n")) == ["SET", "VARIABLE", "X", text]


@pytest.mark.parametrize("bad", ["a\nHANGUP", "a\rb", "a\0b"])
def test_line_breaks_and_nul_cannot_be_sent(bad: str) -> None:
    with pytest.raises(AgiUsageError, match="argument contains a line break or NUL"):
        quote_argument(bad)


def test_command_too_long_for_asterisk_buffer_is_refused() -> None:
    with pytest.raises(AgiUsageError, match=f"command longer than {MAX_COMMAND_BYTES} bytes"):
        format_command("VERBOSE", "x" * MAX_COMMAND_BYTES)


@pytest.mark.parametrize("bad", ["answer", "ANSWER\nHANGUP", "", "SET  VARIABLE"])
def test_command_word_must_be_a_plain_agi_command(bad: str) -> None:
    with pytest.raises(AgiUsageError, match="command must be upper-case words"):
        format_command(bad)


# --- responses ------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("200 result=0", AgiResponse(0)),
        ("200 result=1", AgiResponse(1)),
        ("200 result=50 endpos=11520", AgiResponse(50, None, {"endpos": "11520"})),
        ("200 result=0 endpos=0", AgiResponse(0, None, {"endpos": "0"})),
        ("200 result=1 (PJSIP/caller-0000001d)", AgiResponse(1, "PJSIP/caller-0000001d")),
        ("200 result=1 (a) endpos=3)", AgiResponse(1, "a) endpos=3")),
        ("200 result=1 ()", AgiResponse(1, "")),
        ("200 result=0 (timeout) endpos=8000", AgiResponse(0, "timeout", {"endpos": "8000"})),
        ("200 result=123 (timeout)", AgiResponse(123, "timeout")),
        ("200 result=6", AgiResponse(6)),
    ],
)
def test_200_responses(line: str, expected: AgiResponse) -> None:
    assert ResponseParser("X").feed(line) == expected


def test_digit_and_endpos() -> None:
    response = ResponseParser("STREAM FILE").feed("200 result=50 endpos=11520")
    assert response is not None
    assert response.digit == "2"
    assert response.endpos == 11520
    assert AgiResponse(0).digit == ""


@pytest.mark.parametrize(
    ("result", "digit"),
    [(ord(d), d) for d in "0123456789*#ABCD"]
    + [(1, ""), (ord("a"), ""), (ord("E"), ""), (0x7F, ""), (0x10FFFF, ""), (10**18 - 1, "")],
)
def test_only_the_sixteen_dtmf_keys_are_digits(result: int, digit: str) -> None:
    assert AgiResponse(result).digit == digit


@pytest.mark.parametrize("endpos", ["9" * 19, "\u00b2", "-", "1e3"])
def test_an_endpos_that_is_no_sample_offset_is_none(endpos: str) -> None:
    response = ResponseParser("STREAM FILE").feed(f"200 result=0 endpos={endpos}")
    assert response is not None
    assert response.endpos is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("200 result=", "malformed response: 200 result="),
        ("200 result=" + "9" * 19, "malformed response: 200 result=" + "9" * 19),
        ("200 result=x", "malformed response: 200 result=x"),
        ("200 result=1 junk", "malformed response: 200 result=1 junk"),
        ("200 result=1 (open", "malformed response: 200 result=1 \\(open"),
        ("201 result=1", "unexpected line: 201 result=1"),
        ("", "unexpected line: "),
        ("hangup", "unexpected line: hangup"),
    ],
)
def test_malformed_responses(line: str, message: str) -> None:
    with pytest.raises(AgiProtocolError, match=f"^AGI 'CMD': {message}$"):
        ResponseParser("CMD").feed(line)


def test_a_reply_of_endless_hangup_lines_is_refused() -> None:
    parser = ResponseParser("WAIT FOR DIGIT")
    for _ in range(MAX_RESPONSE_LINES):
        assert parser.feed("HANGUP") is None
    with pytest.raises(AgiProtocolError, match=f"no reply in {MAX_RESPONSE_LINES} lines"):
        parser.feed("HANGUP")


def test_result_minus_one_is_a_hangup() -> None:
    with pytest.raises(AgiHangup, match=r"result=-1 \(hang-up or failure\)"):
        ResponseParser("STREAM FILE").feed("200 result=-1 endpos=4800")


def test_510_511_and_single_line_520() -> None:
    with pytest.raises(AgiInvalidCommand, match="Invalid or unknown command"):
        ResponseParser("FOO").feed("510 Invalid or unknown command")
    with pytest.raises(AgiDeadChannel, match="Command Not Permitted on a dead channel"):
        ResponseParser("STREAM FILE").feed(
            "511 Command Not Permitted on a dead channel or intercept routine"
        )
    with pytest.raises(AgiUsageError, match="Proper usage not available"):
        ResponseParser("X").feed("520 Invalid command syntax.  Proper usage not available.")


USAGE = [
    "520-Invalid command syntax.  Proper usage follows:",
    " Usage: STREAM FILE <filename> <escape_digits> [sample offset]",
    "",
    "  Send the given file, allowing playback to be interrupted by the given",
    "520 End of proper usage.",
]


def test_multi_line_520_is_read_to_its_end() -> None:
    parser = ResponseParser("STREAM FILE")
    for line in USAGE[:-1]:
        assert parser.feed(line) is None
    with pytest.raises(AgiUsageError) as info:
        parser.feed(USAGE[-1])
    assert info.value.message.startswith("Invalid command syntax.  Proper usage follows:\n")
    assert "Usage: STREAM FILE <filename>" in info.value.message


def test_hangup_line_before_the_response_raises_once_the_response_is_read() -> None:
    parser = ResponseParser("WAIT FOR DIGIT")
    assert parser.feed("HANGUP") is None
    with pytest.raises(AgiHangup, match=r"channel hung up \(HANGUP\)"):
        parser.feed("200 result=0")


def test_hangup_line_trailing_a_known_hangup_is_only_noted() -> None:
    # Asterisk sends HANGUP after the result=-1 of the command that saw it:
    # SET VARIABLE on the dead channel still works and must not fail.
    parser = ResponseParser("SET VARIABLE", hung_up=True)
    assert parser.feed("HANGUP") is None
    assert parser.feed("200 result=1") == AgiResponse(1)
    assert parser.hangup_seen


def test_every_error_is_one_hierarchy() -> None:
    for cls in (AgiInvalidCommand, AgiDeadChannel, AgiUsageError, AgiHangup, AgiProtocolError):
        assert issubclass(cls, AgiError)


# --- over a real socket -----------------------------------------------------


async def _session(peer_bytes: bytes) -> tuple[AgiConnection, asyncio.Server, list[bytes]]:
    """An AgiConnection whose peer sends ``peer_bytes`` and then closes."""
    received: list[bytes] = []
    ready: asyncio.Future[AgiConnection] = asyncio.get_running_loop().create_future()

    async def on_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(peer_bytes)
        await writer.drain()
        received.append(await reader.read(4096))
        writer.close()

    server = await asyncio.start_server(on_peer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    ready.set_result(AgiConnection(reader, writer))
    return await ready, server, received


async def test_connection_reads_env_and_a_response() -> None:
    conn, server, _ = await _session(ENV + b"200 result=1\n")
    env = await conn.read_environment()
    assert env.network_script == "consent"
    assert await conn.execute("ANSWER") == AgiResponse(1)
    await conn.close()
    server.close()
    await server.wait_closed()


async def test_a_silent_peer_times_out_and_the_connection_takes_no_more_commands() -> None:
    received: list[bytes] = []
    done = asyncio.Event()

    async def silent_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(ENV)  # the environment, then never a reply
        received.append(await reader.readline())
        await done.wait()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(silent_peer, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.sockets[0].getsockname()[1])
    conn = AgiConnection(reader, writer, read_timeout=0.05)
    await conn.read_environment()
    with pytest.raises(AgiTimeout, match=r"^AGI 'ANSWER': no reply within 0.05 s$"):
        await conn.answer()
    # The reply might still come: nothing more may be sent on this stream.
    with pytest.raises(AgiTimeout, match=r"^AGI 'SET VARIABLE': no reply within 0.05 s$"):
        await conn.set_variable("CALLREC_ERROR", "x")
    assert conn.closed
    await conn.close()
    done.set()
    server.close()
    await server.wait_closed()
    assert received == [b"ANSWER\n"]


async def test_connection_hangup_line_then_response_raises_hangup() -> None:
    conn, server, _ = await _session(ENV + b"HANGUP\n200 result=0 endpos=1234\n")
    await conn.read_environment()
    with pytest.raises(AgiHangup, match=r"channel hung up \(HANGUP\)"):
        await conn.stream_file("x", "2")
    assert conn.hung_up
    await conn.close()
    server.close()
    await server.wait_closed()


async def test_connection_cut_at_every_byte_of_a_response_is_a_hangup() -> None:
    response = b"200 result=50 endpos=11520\n"
    for n in range(len(response)):
        conn, server, _ = await _session(ENV + response[:n])
        await conn.read_environment()
        with pytest.raises(AgiHangup, match="connection closed"):
            await conn.stream_file("x", "2")
        assert conn.hung_up
        with pytest.raises(AgiHangup, match="connection closed"):
            await conn.answer()
        await conn.close()
        server.close()
        await server.wait_closed()


async def test_connection_cut_in_a_multi_line_520_is_a_hangup() -> None:
    block = ("\n".join(USAGE) + "\n").encode()
    for n in range(len(block)):
        conn, server, _ = await _session(ENV + block[:n])
        await conn.read_environment()
        with pytest.raises(AgiHangup):
            await conn.stream_file("x", "2")
        await conn.close()
        server.close()
        await server.wait_closed()


@given(st.text(max_size=200))
def test_any_response_line_is_an_answer_or_an_agi_error(line: str) -> None:
    error: AgiError | None = None
    try:
        ResponseParser("X").feed(line)
    except AgiError as exc:
        error = exc
    assert error is None or error.command == "X"


@given(st.text(max_size=200))
def test_any_environment_line_is_taken_or_refused_with_an_agi_error(line: str) -> None:
    error: AgiProtocolError | None = None
    try:
        EnvironmentParser().feed(line)
    except AgiProtocolError as exc:
        error = exc
    assert error is None or error.command == "(environment)"


_lines = st.lists(
    st.sampled_from(["HANGUP", "200 result=49", "520-Usage", "520 End", "510 x", ""])
    | st.text(max_size=80),
    max_size=MAX_RESPONSE_LINES + 10,
)


@settings(max_examples=300, deadline=None)
@given(_lines)
def test_any_reply_ends_in_a_response_or_an_agi_error_within_the_line_limit(
    lines: list[str],
) -> None:
    parser = ResponseParser("WAIT FOR DIGIT")
    fed = 0
    error: AgiError | None = None
    try:
        for line in lines:
            fed += 1
            response = parser.feed(line)
            if response is not None:
                assert response.digit in DTMF_DIGITS | {""}
                assert response.endpos is None or abs(response.endpos) < 10**18
                break
    except AgiError as exc:
        error = exc
    assert error is None or error.command == "WAIT FOR DIGIT"
    assert fed <= MAX_RESPONSE_LINES + 1


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_from_the_peer_give_a_response_or_an_agi_error(peer: bytes) -> None:
    async def session() -> None:
        async def reply(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readline()
            writer.write(peer)
            await writer.drain()
            writer.close()
            await writer.wait_closed()

        server = await asyncio.start_server(reply, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=8192)
        conn = AgiConnection(reader, writer, read_timeout=1.0)
        try:
            digit = await conn.wait_for_digit(100)
            assert digit in DTMF_DIGITS | {""}
        except AgiError:
            pass  # the documented refusals: a hang-up, a bad line, a 5xx answer
        finally:
            await conn.close()
            server.close()
            await server.wait_closed()

    asyncio.run(session())
