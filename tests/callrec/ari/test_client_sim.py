"""AriClient against the ARI simulator: a recorded call end to end, Asterisk's
error answers (trace 06), and the reconnect paths (websocket drop, trace 07)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np
import pytest

from callrec.ari import events as ev
from callrec.ari.client import AriClient, Backoff
from callrec.ari.sim import AriSimulator, CallerScenario, EndpointBehaviour
from callrec.crypto.keys import PrivateKey
from callrec.errors import AriAuthError, AriConflict, AriError, AriNotFound
from callrec.media.recorder import MediaRecorder
from callrec.recording import AudioFrame, GapFrame, RecordingReader, RecordingWriter, Verdict


class Events:
    """The client's event stream, collected by a task, awaited by predicate."""

    def __init__(self, client: AriClient) -> None:
        self.items: list[ev.StreamItem] = []
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._collect(client))

    async def _collect(self, client: AriClient) -> None:
        async for item in client.events():
            self.items.append(item)
            self._changed.set()

    async def wait(
        self, match: Callable[[ev.StreamItem], bool], after: int = 0, limit: float = 5.0
    ) -> ev.StreamItem:
        async with asyncio.timeout(limit):
            while True:
                for item in self.items[after:]:
                    if match(item):
                        return item
                self._changed.clear()
                await self._changed.wait()

    async def close(self) -> None:
        self._task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await self._task


def stasis_start(channel_id: str) -> Callable[[ev.StreamItem], bool]:
    return lambda i: isinstance(i, ev.StasisStart) and i.channel.id == channel_id


async def caller_in_stasis(sim: AriSimulator, client: AriClient) -> tuple[Events, str]:
    """The client's events connected and one silent caller in Stasis."""
    events = Events(client)
    await events.wait(lambda i: isinstance(i, ev.Connected))
    caller = sim.place_call(CallerScenario())
    await events.wait(stasis_start(caller))
    return events, caller


def tone(seconds: float = 5.0) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)


@pytest.fixture
async def sim() -> AsyncIterator[AriSimulator]:
    async with AriSimulator(apps=["callrec"]) as s:
        yield s


@pytest.fixture
async def client(sim: AriSimulator) -> AsyncIterator[AriClient]:
    async with AriClient(
        sim.url, "callrec", "callrec-secret", "callrec", backoff=Backoff(0.02, 2.0, 0.1)
    ) as c:
        yield c


async def test_recorded_call_through_snoop_and_external_media(
    sim: AriSimulator, client: AriClient, tmp_path: Path
) -> None:
    sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.05))
    recorder = MediaRecorder("127.0.0.1", 0)
    await recorder.start()
    events = Events(client)
    await events.wait(lambda i: isinstance(i, ev.Connected))
    caller = sim.place_call(CallerScenario(audio=tone()))
    start = await events.wait(stasis_start(caller))
    assert isinstance(start, ev.StasisStart)
    assert start.args == ("100",)
    await client.answer(caller)
    agent = await client.originate("PJSIP/agent", app="callrec", app_args="agent", timeout=5)
    assert agent.state == "Down"
    await events.wait(stasis_start(agent.id))
    call_bridge = await client.create_bridge(name="call")
    await client.add_channels(call_bridge.id, [caller, agent.id])

    snoop = await client.snoop(caller, app="callrec", app_args="snoop")
    media = await client.external_media(
        app="callrec", external_host=recorder.external_host, format="ulaw"
    )
    assert media.rtp_address is not None
    assert media.rtp_port is not None
    key = PrivateKey.generate()
    writer = RecordingWriter.create(
        tmp_path, [key.public_key()], codec="ulaw", sample_rate=8000, fsync_interval=math.inf
    )
    stream = recorder.open_stream(writer, "ulaw", caller)
    stream.expect_source(media.rtp_address, media.rtp_port)
    await events.wait(stasis_start(media.id))  # addChannel before it would be 422
    await events.wait(stasis_start(snoop.id))
    rec_bridge = await client.create_bridge(name="rec")
    await client.add_channels(rec_bridge.id, [snoop.id, media.id])
    await sim.wait_for(lambda: stream.stats.packets >= 25, timeout=5)

    sim.hangup_caller(caller)
    await events.wait(lambda i: isinstance(i, ev.StasisEnd) and i.channel.id == caller)
    for chan in (agent.id, media.id):
        await client.hangup(chan)
    await client.destroy_bridge(rec_bridge.id)
    await client.destroy_bridge(call_bridge.id)
    await asyncio.sleep(0.05)  # packets in flight
    stats = await recorder.close_stream(stream)
    info = writer.close()
    await recorder.stop()
    await events.close()

    sent = sim.rtp_stats(media.id)
    with RecordingReader(info.path, [key]) as reader:
        frames = list(reader.frames())
    assert reader.verdict is Verdict.COMPLETE
    audio = b"".join(f.payload for f in frames if isinstance(f, AudioFrame))
    assert audio == b"".join(sent.payloads)
    assert not any(isinstance(f, GapFrame) for f in frames)
    assert stats.packets == sent.packets_sent
    assert (stats.lost, stats.foreign, stats.bad) == (0, 0, 0)


async def test_error_answers_of_trace_06(sim: AriSimulator, client: AriClient) -> None:
    with pytest.raises(AriNotFound) as nf:
        await client.answer("no-such-channel")
    assert nf.value.message == "Channel not found"
    with pytest.raises(AriNotFound) as nb:
        await client.add_channels("no-such-bridge", ["no-such-channel"])
    assert nb.value.message == "Bridge not found"
    with pytest.raises(AriNotFound) as npb:
        await client.stop_playback("x")
    assert npb.value.message == "Playback not found"
    with pytest.raises(AriError) as alloc:
        await client.originate("PJSIP/no-such-endpoint", app="callrec")
    assert (type(alloc.value), alloc.value.status, alloc.value.message) == (
        AriError,
        500,
        "Allocation failed",
    )
    with pytest.raises(AriError) as codec:
        await client.external_media(
            app="callrec", external_host="127.0.0.1:40000", format="nosuchcodec"
        )
    assert codec.value.status == 500
    bridge = await client.create_bridge()
    with pytest.raises(AriError) as unknown:
        await client.add_channels(bridge.id, ["no-such-channel"])
    assert (unknown.value.status, unknown.value.message) == (400, "Channel not found")


async def test_not_in_stasis_is_a_conflict(sim: AriSimulator, client: AriClient) -> None:
    # A channel created by originate without app runs in the dialplan (trace 05/06).
    sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.01))
    chan = await client.request(
        "POST",
        "/channels",
        {"endpoint": "PJSIP/agent", "context": "lab", "extension": "echo", "priority": 1},
    )
    with pytest.raises(AriConflict) as answer:
        await client.answer(chan["id"])
    assert (answer.value.status, answer.value.message) == (
        409,
        "Channel not in Stasis application",
    )
    bridge = await client.create_bridge()
    with pytest.raises(AriConflict) as add:
        await client.add_channels(bridge.id, [chan["id"]])
    assert add.value.status == 422


async def test_get_playback_while_it_plays_not_found_once_stopped(
    sim: AriSimulator, client: AriClient
) -> None:
    events, caller = await caller_in_stasis(sim, client)
    await client.answer(caller)
    await client.play(caller, "sound:demo-congrats", playback_id="disclosure")
    await events.wait(lambda i: isinstance(i, ev.PlaybackStarted))
    playing = await client.get_playback("disclosure")
    assert (playing.id, playing.state, playing.channel_id) == ("disclosure", "playing", caller)
    await client.stop_playback("disclosure")
    with pytest.raises(AriNotFound) as gone:
        await client.get_playback("disclosure")
    assert gone.value.message == "Playback not found"
    await events.close()


async def test_wrong_password_against_the_simulator(sim: AriSimulator) -> None:
    async with AriClient(sim.url, "callrec", "wrong", "callrec") as bad:
        with pytest.raises(AriAuthError):
            await bad.list_channels()
        with pytest.raises(AriAuthError):
            async for _ in bad.events():
                pass


async def test_websocket_drop_reconnects_and_calls_live_on(
    sim: AriSimulator, client: AriClient
) -> None:
    events, caller = await caller_in_stasis(sim, client)
    info = await client.asterisk_info()
    mark = len(events.items)
    await sim.drop_websockets()
    gone = await events.wait(lambda i: isinstance(i, ev.Disconnected), after=mark)
    assert gone == ev.Disconnected(1006, "abnormal close")
    await events.wait(lambda i: isinstance(i, ev.Connected), after=mark)
    assert [c.id for c in await client.list_channels()] == [caller]
    assert (await client.asterisk_info()).startup_time == info.startup_time
    await events.close()


async def test_pbx_restart_reconnects_and_shows_the_new_boot(
    sim: AriSimulator, client: AriClient
) -> None:
    events, _caller = await caller_in_stasis(sim, client)
    before = await client.asterisk_info()
    mark = len(events.items)
    await sim.restart(downtime=0.4)
    hangup = await events.wait(lambda i: isinstance(i, ev.ChannelHangupRequest), after=mark)
    assert isinstance(hangup, ev.ChannelHangupRequest)
    assert (hangup.cause, hangup.soft) == (4, True)
    await events.wait(lambda i: isinstance(i, ev.Disconnected), after=mark)
    back = await events.wait(lambda i: isinstance(i, ev.Connected), after=mark)
    assert isinstance(back, ev.Connected)
    assert await client.list_channels() == []
    app = await client.get_application()
    assert app.channel_ids == ()
    assert (await client.asterisk_info()).startup_time != before.startup_time
    await events.close()


async def test_a_reconnect_into_the_404_of_a_booting_pbx_keeps_trying(
    sim: AriSimulator, client: AriClient
) -> None:
    # Asterisk answers /ari with 404 while res_ari loads (real PBX, after
    # `core restart now`): a reconnect landing there must not end the recorder.
    events, caller = await caller_in_stasis(sim, client)
    mark = len(events.items)
    sim.gate.loading = True
    await sim.drop_websockets()
    await events.wait(lambda i: isinstance(i, ev.Disconnected), after=mark)
    await sim.wait_for(
        lambda: any(e[1] == "/ari/events" and e[3] == 404 for e in sim.request_log), timeout=5
    )
    sim.gate.loading = False
    await events.wait(lambda i: isinstance(i, ev.Connected), after=mark)
    assert [c.id for c in await client.list_channels()] == [caller]
    await events.close()
