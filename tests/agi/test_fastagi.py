"""The FastAGI server: routing, concurrency, and that no channel is ever left stuck."""

from __future__ import annotations

import asyncio

import pytest

from agi.fastagi import AgiHandler, FastAgiServer
from agi.protocol import AgiConnection, AgiEnvironment
from callrec.errors import RecordingUnavailable
from tests.agi.agiclient import ChannelModel, asterisk_env_block, run_session


async def _serve(routes: dict[str, AgiHandler], **kwargs: float) -> FastAgiServer:
    def factory(env: AgiEnvironment) -> AgiHandler | None:
        return routes.get(env.network_script)

    server = FastAgiServer(factory, "127.0.0.1", 0, **kwargs)
    await server.start()
    return server


async def test_routes_by_script_path_and_ignores_the_query() -> None:
    seen: list[tuple[str, list[str]]] = []

    async def consent(agi: AgiConnection, env: AgiEnvironment) -> None:
        seen.append((env.network_script, env.args))
        await agi.set_variable("CALLREC_CONSENT", "implied")

    server = await _serve({"consent": consent})
    env = {"agi_network_script": "consent?x=1", "agi_arg_1": "100"}
    client, model = await run_session(server.port, env)
    await server.stop()
    assert seen == [("consent", ["100"])]
    assert model.variables == {"CALLREC_CONSENT": "implied"}
    assert client.closed_by_server


async def test_unknown_script_sets_an_error_and_hands_the_channel_back() -> None:
    server = await _serve({})
    client, model = await run_session(server.port, {"agi_network_script": "../etc/passwd"})
    await server.stop()
    assert model.variables == {"CALLREC_ERROR": "unknown-script"}
    assert client.closed_by_server


async def test_a_crashing_handler_still_sets_an_error(caplog: pytest.LogCaptureFixture) -> None:
    async def broken(agi: AgiConnection, env: AgiEnvironment) -> None:
        raise ZeroDivisionError

    async def refused(agi: AgiConnection, env: AgiEnvironment) -> None:
        raise RecordingUnavailable("spool full")

    server = await _serve({"broken": broken, "refused": refused})
    _, crashed = await run_session(server.port, {"agi_network_script": "broken"})
    _, failed = await run_session(server.port, {"agi_network_script": "refused"})
    await server.stop()
    assert crashed.variables == {"CALLREC_ERROR": "internal"}
    assert failed.variables == {"CALLREC_ERROR": "failed"}
    assert "broken crashed" in caplog.text


async def test_invalid_command_reply_is_an_error_not_a_hang() -> None:
    async def odd(agi: AgiConnection, env: AgiEnvironment) -> None:
        await agi.execute("SAY ALPHA", "abc", "")

    server = await _serve({"odd": odd})
    _, model = await run_session(server.port, {"agi_network_script": "odd"})
    await server.stop()
    assert model.variables == {"CALLREC_ERROR": "failed"}


async def test_usage_reply_is_read_to_its_end_and_the_session_goes_on() -> None:
    async def bad_args(agi: AgiConnection, env: AgiEnvironment) -> None:
        try:
            await agi.execute("WAIT FOR DIGIT")
        finally:
            await agi.set_variable("AFTER", "yes")

    server = await _serve({"x": bad_args})
    _, model = await run_session(server.port, {"agi_network_script": "x"})
    await server.stop()
    assert model.variables == {"AFTER": "yes", "CALLREC_ERROR": "failed"}


async def test_peer_that_never_sends_its_environment_is_dropped() -> None:
    server = await _serve({}, env_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5.0) == b""
    writer.close()
    await server.stop()


async def test_concurrent_sessions_each_get_their_own_answer() -> None:
    async def echo(agi: AgiConnection, env: AgiEnvironment) -> None:
        await asyncio.sleep(0.05)
        await agi.set_variable("SEEN", env.uniqueid)

    server = await _serve({"echo": echo})
    runs = [
        run_session(server.port, {"agi_network_script": "echo", "agi_uniqueid": f"17.{n}"})
        for n in range(20)
    ]
    results = await asyncio.gather(*runs)
    await server.stop()
    assert sorted(m.variables["SEEN"] for _, m in results) == sorted(f"17.{n}" for n in range(20))


async def test_stop_cancels_a_stuck_session_and_tells_the_dialplan() -> None:
    started = asyncio.Event()

    async def stuck(agi: AgiConnection, env: AgiEnvironment) -> None:
        started.set()
        await asyncio.sleep(3600)

    server = await _serve({"stuck": stuck})
    session = asyncio.create_task(run_session(server.port, {"agi_network_script": "stuck"}))
    await started.wait()
    assert server.sessions == 1
    await server.stop(grace=0.1)
    client, model = await session
    assert model.variables == {"CALLREC_ERROR": "shutdown"}
    assert client.closed_by_server
    assert server.sessions == 0


async def test_raw_bytes_on_the_wire_are_quoted_commands() -> None:
    async def hostile_value(agi: AgiConnection, env: AgiEnvironment) -> None:
        await agi.set_variable("NAME", env.calleridname)

    name = 'Robert\\"); DROP TABLE calls;-- "x" ' + "\x1b[31m"
    server = await _serve({"v": hostile_value})
    client, model = await run_session(
        server.port, {"agi_network_script": "v", "agi_calleridname": name}
    )
    await server.stop()
    assert model.variables == {"NAME": name}
    assert client.raw_commands[0].count(b"\n") == 1


async def test_stop_in_the_middle_of_a_command_reads_its_reply_first() -> None:
    sent = asyncio.Event()

    async def waiting(agi: AgiConnection, env: AgiEnvironment) -> None:
        sent.set()
        await agi.wait_for_digit(400)
        await asyncio.sleep(3600)

    server = await _serve({"w": waiting})
    model = ChannelModel(realtime=True)
    session = asyncio.create_task(run_session(server.port, {"agi_network_script": "w"}, model))
    await sent.wait()
    await server.stop(grace=0.05)
    _, model = await session
    assert model.variables == {"CALLREC_ERROR": "shutdown"}
    assert model.commands[0] == ["WAIT", "FOR", "DIGIT", "400"]


def test_environment_block_is_what_asterisk_writes() -> None:
    block = asterisk_env_block({"agi_network_script": "record"}).decode()
    assert block.startswith("agi_network: yes\nagi_network_script: record\n")
    assert "agi_request: agi://127.0.0.1:4573/record\n" in block
    assert block.endswith("agi_threadid: 140245106652736\n\n")


async def test_model_answers_dead_channel_commands_with_511() -> None:
    async def after_hangup(agi: AgiConnection, env: AgiEnvironment) -> None:
        await agi.stream_file("x", "")

    server = await _serve({"d": after_hangup})
    _, model = await run_session(server.port, {"agi_network_script": "d"}, ChannelModel(dead=True))
    await server.stop()
    assert model.variables == {"CALLREC_ERROR": "hangup"}
