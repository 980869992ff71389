"""Typed events and the events websocket's reconnect loop.

Parsing runs over every event in the recorded Asterisk 22 traces; the
reconnect loop runs against a real aiohttp websocket server that misbehaves
the way Asterisk does during ``core restart now`` (trace 07).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from callrec.ari import events as ev
from callrec.ari.client import AriClient, Backoff
from callrec.clock import SystemClock
from callrec.errors import AriAuthError, AriError

TRACES = Path(__file__).resolve().parents[2] / "fixtures" / "ari-traces"
PASSWORD = "callrec-secret"


def trace_events() -> list[dict[str, Any]]:
    out = []
    for path in sorted(TRACES.glob("*.jsonl")):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                item = json.loads(line)
                if item["kind"] == "event":
                    out.append(item["event"])
    return out


def test_every_traced_event_parses_to_its_typed_class() -> None:
    events = trace_events()
    assert len(events) > 300
    for raw in events:
        typed = ev.parse_event(raw)
        assert type(typed).__name__ == raw["type"], raw["type"]
        assert typed.raw is raw


def test_event_fields_follow_asterisk() -> None:
    by_type: dict[str, list[ev.Event]] = {}
    for raw in trace_events():
        typed = ev.parse_event(raw)
        by_type.setdefault(typed.type, []).append(typed)
    start = by_type["StasisStart"][0]
    assert isinstance(start, ev.StasisStart)
    assert start.args == ("100",)
    assert start.channel.caller.number == "sipp"
    assert start.channel.dialplan.app_data == "callrec,100"
    hangups = [
        e for e in by_type["ChannelHangupRequest"] if isinstance(e, ev.ChannelHangupRequest)
    ]
    assert {(h.cause, h.soft, h.tech_cause) for h in hangups} >= {
        (None, False, None),  # remote BYE
        (32, True, None),  # ARI DELETE
        (4, True, None),  # shutdown
    }
    # The 04b file holds a no-answer run, so busy (README: 17/486) is built here.
    busy = ev.parse_event({**hangups[0].raw, "cause": 17, "tech_cause": 486})
    assert isinstance(busy, ev.ChannelHangupRequest)
    assert (busy.cause, busy.soft, busy.tech_cause) == (17, False, 486)
    destroyed = [e for e in by_type["ChannelDestroyed"] if isinstance(e, ev.ChannelDestroyed)]
    assert (19, "User alerting, no answer", 480) in {
        (d.cause, d.cause_txt, d.tech_cause) for d in destroyed
    }
    dtmf = by_type["ChannelDtmfReceived"][0]
    assert isinstance(dtmf, ev.ChannelDtmfReceived)
    assert (dtmf.digit, dtmf.duration_ms) == (
        "2",
        280,
    )
    finished = {
        e.playback.state for e in by_type["PlaybackFinished"] if isinstance(e, ev.PlaybackFinished)
    }
    assert finished == {"done", "failed"}
    dial = by_type["Dial"][0]
    assert isinstance(dial, ev.Dial)
    assert dial.caller is None
    assert dial.dialstatus == ""
    entered = by_type["ChannelEnteredBridge"][0]
    assert isinstance(entered, ev.ChannelEnteredBridge)
    assert entered.bridge.bridge_type == "mixing"


def test_unknown_and_malformed_events_stay_generic() -> None:
    odd = ev.parse_event({"type": "ChannelTalkingStarted", "channel": {"id": "1"}})
    assert isinstance(odd, ev.GenericEvent)
    assert odd.raw["channel"] == {"id": "1"}
    broken = ev.parse_event({"type": "StasisStart", "args": []})
    assert isinstance(broken, ev.GenericEvent)
    assert broken.type == "StasisStart"


# --- websocket ----------------------------------------------------------

STASIS_START = {
    "type": "StasisStart",
    "timestamp": "2026-11-29T01:27:39.512+0000",
    "args": ["100"],
    "channel": {"id": "1795915659.0", "name": "PJSIP/caller-00000000", "state": "Ring"},
    "asterisk_id": "02:00:00:00:00:01",
    "application": "callrec",
}


@dataclass
class WsServer:
    """Each handshake takes the next behaviour from ``script``."""

    script: list[str]
    queries: list[dict[str, str]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.queries.append(dict(request.query))
        action = self.script.pop(0) if self.script else "hold"
        if action == "503":
            return web.json_response({"message": "Asterisk not booted"}, status=503)
        if action == "400":
            return web.Response(status=400, text="<html>Bad Request</html>")
        if action == "401":
            return web.json_response({"message": "Authentication required"}, status=401)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_str("not json")
        await ws.send_json(STASIS_START)
        if action == "drop":
            # Like Asterisk's restart: the TCP connection ends, no close frame.
            assert request.transport is not None
            request.transport.close()
            return ws
        if action == "close":
            await ws.close()
            return ws
        await asyncio.sleep(30)
        return ws


class HookClock(SystemClock):
    """Real time, but each backoff sleep is recorded and can run a hook."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.on_sleep: list[Any] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.on_sleep:
            await self.on_sleep.pop(0)()
        await asyncio.sleep(seconds)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def serve(server: WsServer, port: int) -> web.AppRunner:
    app = web.Application()
    app.router.add_get("/ari/events", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@pytest.fixture
async def runners() -> AsyncIterator[list[web.AppRunner]]:
    started: list[web.AppRunner] = []
    yield started
    for runner in started:
        await runner.cleanup()


async def collect(client: AriClient, count: int) -> list[ev.StreamItem]:
    items: list[ev.StreamItem] = []
    stream = client.events()
    try:
        async for item in stream:
            items.append(item)
            if len(items) == count:
                break
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return items


async def test_reconnects_through_refusal_503_and_abnormal_close(
    runners: list[web.AppRunner],
) -> None:
    port = free_port()
    server = WsServer(["drop", "503", "503", "close"])
    clock = HookClock()

    async def come_up() -> None:
        runners.append(await serve(server, port))

    clock.on_sleep.append(come_up)  # the PBX is down at first: connection refused
    client = AriClient(
        f"http://127.0.0.1:{port}",
        "callrec",
        PASSWORD,
        "callrec",
        backoff=Backoff(initial=0.01, factor=2.0, maximum=0.03),
        clock=clock,
    )
    async with client:
        items = await asyncio.wait_for(collect(client, 6), 10)
    kinds = [type(i).__name__ for i in items]
    assert kinds == [
        "Connected",
        "StasisStart",
        "Disconnected",
        "Connected",
        "StasisStart",
        "Disconnected",
    ]
    assert items[0] == ev.Connected(attempt=2)  # attempt 1 was refused
    assert items[2] == ev.Disconnected(close_code=1006, reason="abnormal close")
    assert items[3] == ev.Connected(attempt=3)  # two 503 handshakes, then 101
    start = items[1]
    assert isinstance(start, ev.StasisStart)
    assert start.channel.id == "1795915659.0"
    assert server.queries[0] == {
        "app": "callrec",
        "api_key": f"callrec:{PASSWORD}",
        "subscribeAll": "false",
    }
    # backoff grows while failing and starts again after a good connection
    assert clock.sleeps[:4] == [0.01, 0.01, 0.01, 0.02]


async def test_wrong_password_is_fatal(
    runners: list[web.AppRunner], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    runners.append(await serve(WsServer(["401"]), port))
    async with AriClient(f"http://127.0.0.1:{port}", "callrec", PASSWORD, "callrec") as client:
        with pytest.raises(AriAuthError) as info:
            await collect(client, 1)
    assert info.value.status == 401
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in caplog.text


async def test_other_handshake_refusals_are_errors_not_retries(
    runners: list[web.AppRunner],
) -> None:
    # 400 (no app) cannot be cured by waiting: it must surface.
    port = free_port()
    server = WsServer(["400"])
    runners.append(await serve(server, port))
    async with AriClient(f"http://127.0.0.1:{port}", "callrec", PASSWORD, "") as client:
        with pytest.raises(AriError) as info:
            await collect(client, 1)
    assert info.value.status == 400
    assert len(server.queries) == 1


async def test_a_pbx_that_never_answers_the_handshake_is_retried() -> None:
    done = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # takes the request, never answers
        await done.wait()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    clock = HookClock()
    retried = asyncio.Event()

    async def note() -> None:
        retried.set()

    clock.on_sleep.append(note)
    client = AriClient(
        f"http://127.0.0.1:{port}", "callrec", PASSWORD, "callrec", timeout=0.2, clock=clock
    )
    async with client:
        task = asyncio.create_task(collect(client, 1))
        await asyncio.wait_for(retried.wait(), 5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    done.set()
    server.close()
    await server.wait_closed()
    assert clock.sleeps[0] == 0.1
