"""Life cycle: websocket drop, PBX restart, SIGTERM, leftovers, failure policy."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import resource
import signal
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from callrec.ari.sim import CallerScenario
from callrec.crypto.keys import PublicKey
from callrec.decode import decode_recording
from callrec.failure_policy import FailurePolicy
from callrec.recording import Codec, RecordingWriter, verify
from tests.ari_app.conftest import (
    DISCLOSURE,
    GRACE,
    NotifySocket,
    Rig,
    serve,
    stop,
    wait_until,
)


def _recording_up(rig: Rig) -> bool:
    """The tap's ExternalMedia channel is bridged, i.e. RTP flows."""
    return any(ch.kind == "unicast" and ch.bridge_id for ch in rig.sim.channels)


async def test_websocket_drop_keeps_the_call_and_the_recording_has_no_gap(running: Rig) -> None:
    rig = running
    app = rig.app
    assert app is not None
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 3.0)
    )
    await wait_until(lambda: _recording_up(rig))
    await rig.sim.drop_websockets()
    await wait_until(lambda: app.connections == 2)
    assert caller in app.sessions
    line = await rig.wait_audit(caller)
    assert line["end"] == "caller-hangup"
    path = Path(line["path"])
    assert str(verify(path, rig.keys).verdict) == "complete"
    decoded = decode_recording(path, rig.keys)
    assert decoded.gaps == 0
    sent = rig.sim.rtp_stats(line["evidence"]["channels"]["external_media"])
    assert abs(len(decoded.samples) / 8000 - sent.packets_sent * 0.02) <= 0.02


async def test_pbx_restart_seals_the_open_recording_with_its_reason(running: Rig) -> None:
    rig = running
    app = rig.app
    assert app is not None
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=30.0)
    )
    await wait_until(lambda: _recording_up(rig))
    await rig.sim.restart(downtime=0.4)
    line = await rig.wait_audit(caller)
    assert line["end"] == "ended-by-pbx-restart"
    path = Path(line["path"])
    assert str(verify(path, rig.keys).verdict) == "complete"
    assert decode_recording(path, rig.keys).metadata[-1]["reason"] == "ended-by-pbx-restart"
    # The app is back on the new boot and takes calls again.
    await wait_until(lambda: app.connections == 2)
    again = rig.sim.place_call(CallerScenario(exten="100", hangup_after=DISCLOSURE / 2))
    assert (await rig.wait_audit(again))["decision"] == "declined-hangup"


async def _sigterm_serve_when(
    rig: Rig, notified: NotifySocket, setup: Callable[[], Awaitable[str]]
) -> str:
    """Run ``callrec serve``, let ``setup`` place a call, then SIGTERM; it must exit 0."""
    proc = await serve(rig, notified)
    try:
        caller = await setup()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        await stop(proc)
    assert proc.returncode == 0, rig.serve_log()[-3000:]
    return caller


async def test_sigterm_seals_recordings_and_leaves_callers_connected(
    rig: Rig, notify_socket: NotifySocket
) -> None:
    async def mid_call() -> str:
        caller = rig.sim.place_call(
            CallerScenario(exten="100", audio=rig.voice_path, hangup_after=60.0)
        )
        await wait_until(lambda: _recording_up(rig))
        await asyncio.sleep(0.5)
        return caller

    caller = await _sigterm_serve_when(rig, notify_socket, mid_call)
    line = await rig.wait_audit(caller)
    assert line["end"] == "shutdown"
    path = Path(line["path"])
    assert str(verify(path, rig.keys).verdict) == "complete"
    assert decode_recording(path, rig.keys).metadata[-1]["reason"] == "shutdown"
    # The caller is still talking to the agent; the tap is gone.
    bridge = rig.sim.bridge_of(caller)
    assert bridge is not None and len(bridge.channels) == 2
    assert not any(ch.kind in ("snoop", "unicast") for ch in rig.sim.channels)


async def test_sigterm_before_the_call_is_connected_hands_the_caller_to_the_dialplan(
    rig: Rig, notify_socket: NotifySocket
) -> None:
    """No app will serve a caller still waiting for its destination: it goes on
    in the dialplan after Stasis() instead of hanging in silence."""

    async def ringing() -> str:
        caller = rig.sim.place_call(CallerScenario(exten="300", hangup_after=60.0))
        await wait_until(lambda: any(ch.name.startswith("PJSIP/away") for ch in rig.sim.channels))
        return caller

    caller = await _sigterm_serve_when(rig, notify_socket, ringing)
    line = await rig.wait_audit(caller)
    assert line["end"] == "shutdown"
    assert line["recording_id"] is None
    calls = [(m, path, status) for m, path, _, status in rig.sim.request_log]
    assert ("POST", f"/ari/channels/{caller}/continue", 204) in calls
    assert not any(ch.name.startswith("PJSIP/away") for ch in rig.sim.channels)
    left = rig.sim.channel(caller)
    assert left is None or not left.in_stasis


async def test_leftover_part_files_are_adopted_unchanged_at_start_up(rig: Rig) -> None:
    incoming = rig.spool / "incoming"
    incoming.mkdir(parents=True)
    writer = RecordingWriter.create(
        incoming, [PublicKey.load(rig.out / "demo.pub")], codec=Codec.ULAW, sample_rate=8000
    )
    writer.write_audio(b"\xff" * 160 * 300)
    writer.abort()
    digest = hashlib.sha256(writer.path.read_bytes()).hexdigest()
    await rig.start_app()
    moved = list(rig.spool.glob("[0-9]*/*/*/*.crec.part"))
    assert [p.name for p in moved] == [writer.path.name]
    assert hashlib.sha256(moved[0].read_bytes()).hexdigest() == digest
    assert str(verify(moved[0], rig.keys).verdict) == "truncated"
    assert list(incoming.iterdir()) == []
    (line,) = [x for x in rig.audit() if x["event"] != "service"]  # no start/stop line
    assert line["event"] == "recording-adopted" and line["path"] == str(moved[0])
    assert line["recording_id"] == writer.recording_id


@pytest.mark.parametrize("policy", ["best-effort", "strict"])
async def test_unwritable_spool_follows_the_failure_policy(
    rig: Rig, policy: FailurePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = rig.out / "not-a-folder"
    blocker.write_text("a file where the spool should be\n")
    config = rig.config
    recording = replace(config.recording, spool=blocker, on_failure=policy)
    await rig.start_app(replace(config, recording=recording))
    caplog.set_level(logging.ERROR)
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 1.5)
    )
    line = await rig.wait_audit(caller)
    assert line["event"] == "failure"
    assert "spool" in line["reason"]
    assert line["recording_id"] is None
    assert any("recording unavailable" in r.getMessage() for r in caplog.records)
    dialled = any(e["type"] == "Dial" for e in rig.sim.events)
    if policy == "best-effort":
        assert dialled and line["durations"].get("bridged") is not None
    else:
        assert not dialled and line["end"] == "recording-unavailable"
        played = [
            e["playback"]["media_uri"] for e in rig.sim.events if e["type"] == "PlaybackStarted"
        ]
        assert played[-1] == "sound:callrec/recording-unavailable"
    assert blocker.read_text() == "a file where the spool should be\n"


def _small_files() -> None:
    # In the serve child: any file past 12 KiB fails with EFBIG, as on a
    # full disk, instead of killing the process with SIGXFSZ.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (12 * 1024, 12 * 1024))


@pytest.mark.parametrize("policy", ["best-effort", "strict"])
async def test_disk_full_mid_call_follows_the_failure_policy(
    rig: Rig, notify_socket: NotifySocket, policy: str
) -> None:
    text = rig.config_path.read_text().replace(
        'on_failure = "best-effort"', f'on_failure = "{policy}"'
    )
    rig.config_path.write_text(text)
    proc = await serve(rig, notify_socket, preexec_fn=_small_files)
    try:
        caller = rig.sim.place_call(
            CallerScenario(
                exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 3.5
            )
        )
        line = await rig.wait_audit(caller)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
    assert line["event"] == "failure" and "recording stopped" in line["reason"]
    assert line["sealed"] is False
    part = Path(line["path"])
    assert part.name.endswith(".crec.part")
    assert str(verify(part, rig.keys).verdict) == "truncated"
    expected_end = "caller-hangup" if policy == "best-effort" else "recording-unavailable"
    assert line["end"] == expected_end


async def test_a_caller_gone_while_the_websocket_was_down_is_closed_on_reconnect(
    running: Rig,
) -> None:
    rig = running
    app = rig.app
    assert app is not None
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=30.0)
    )
    await wait_until(lambda: _recording_up(rig))
    await rig.sim.drop_websockets()
    rig.sim.hangup_caller(caller)  # its events go nowhere: no socket is connected
    line = await rig.wait_audit(caller)
    assert line["end"] == "channel-gone"
    assert str(verify(Path(line["path"]), rig.keys).verdict) == "complete"
    await wait_until(lambda: not rig.sim.channels and not rig.sim.bridges)


async def test_a_restart_missed_entirely_is_found_by_its_start_time(
    running: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = running
    caplog.set_level(logging.WARNING, logger="ari_app.app")
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=30.0)
    )
    await wait_until(lambda: _recording_up(rig))
    await rig.sim.drop_websockets()
    # Its hang-up events reach no socket, and the connections drop before the
    # recorder is back: it misses the whole shutdown (on Asterisk that lasts
    # 1.1 s, long enough to reconnect and find the channel gone instead).
    await rig.sim.restart(downtime=0.4, drop_after=0.1)
    line = await rig.wait_audit(caller)
    assert line["end"] == "ended-by-pbx-restart"
    path = Path(line["path"])
    assert decode_recording(path, rig.keys).metadata[-1]["reason"] == "ended-by-pbx-restart"
    assert any("Asterisk restarted" in r.getMessage() for r in caplog.records)


def _seen(rig: Rig, kind: str, channel_id: str) -> bool:
    target = f"channel:{channel_id}"
    return any(e["type"] == kind and e["playback"]["target_uri"] == target for e in rig.sim.events)


async def test_a_disclosure_that_ended_while_disconnected_still_leads_to_consent(
    running: Rig,
) -> None:
    rig = running
    app = rig.app
    assert app is not None and app._events is not None
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 2.0)
    )
    await wait_until(lambda: _seen(rig, "PlaybackStarted", caller))
    # The app stops listening; PlaybackFinished goes nowhere and is never replayed.
    app._events.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await app._events
    await wait_until(lambda: _seen(rig, "PlaybackFinished", caller))
    app._events = asyncio.create_task(app._consume_events())
    line = await rig.wait_audit(caller)
    assert line["decision"] == "implied"
    assert str(verify(Path(line["path"]), rig.keys).verdict) == "complete"


async def test_a_destination_that_answered_while_disconnected_is_connected(running: Rig) -> None:
    rig = running
    app = rig.app
    assert app is not None and app._events is not None
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 2.5)
    )
    await wait_until(lambda: any(e["type"] == "Dial" for e in rig.sim.events))
    app._events.cancel()  # the destination's StasisStart goes nowhere
    with contextlib.suppress(asyncio.CancelledError):
        await app._events
    await wait_until(
        lambda: any(ch.kind == "pjsip" and ch.state == "Up" for ch in rig.sim.channels)
    )
    app._events = asyncio.create_task(app._consume_events())
    line = await rig.wait_audit(caller)
    assert line["destination"] == "answered"
    assert str(verify(Path(line["path"]), rig.keys).verdict) == "complete"
