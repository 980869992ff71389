"""The recording tap on its own: one channel into one sealed recording.

No Stasis app here: the test drives the ARI client, the router and the media
recorder itself, as the AGI front end does, against the simulator on real
sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from ari_app.demo import write_keys
from callrec.ari.client import AriClient
from callrec.ari.events import Connected, Event
from callrec.ari.router import EventRouter
from callrec.ari.sim import AriSimulator, CallerScenario
from callrec.crypto.keys import PrivateKey, PublicKey
from callrec.decode import decode_recording
from callrec.errors import RecordingUnavailable
from callrec.evidence import Evidence
from callrec.media.recorder import MediaRecorder
from callrec.media.signals import speech_like
from callrec.pausing import PauseSource
from callrec.recording import (
    GapFrame,
    MetadataFrame,
    PauseFrame,
    RecordingReader,
    ResumeFrame,
    verify,
)
from callrec.spool import Spool
from callrec.tap import MEDIA_LOST, MEDIA_TIMEOUT, SNOOP_APP_ARG, RecordingTap, TapSettings


def _evidence(channel: str) -> Evidence:
    return Evidence.for_call(
        uniqueid=channel,
        linkedid=channel,
        caller_number="+4930123",
        caller_name="",
        dialled="100",
        language="en",
        pseudonym_key=bytes(32),
    )


@dataclass
class TapRig:
    sim: AriSimulator
    client: AriClient
    router: EventRouter
    recorder: MediaRecorder
    spool: Spool
    public: PublicKey
    keys: list[PrivateKey]

    def tap(
        self,
        media_format: str = "ulaw",
        *,
        media_timeout: float = MEDIA_TIMEOUT,
        on_failure: Callable[[str], None] | None = None,
    ) -> RecordingTap:
        settings = TapSettings(
            app="callrec", media_format=media_format, media_timeout=media_timeout
        )
        return RecordingTap(
            self.client,
            self.router,
            self.recorder,
            self.spool,
            [self.public],
            settings,
            on_failure=on_failure,
        )

    async def caller(self, seconds: float = 30.0) -> str:
        """A caller in Stasis, answered, saying something."""
        voice = speech_like(seconds, seed=11)
        channel_id = self.sim.place_call(CallerScenario(audio=voice, hangup_after=seconds))
        await self.router.wait_for(channel_id, "StasisStart", 5)
        await self.client.answer(channel_id)
        return channel_id


async def _pump(client: AriClient, router: EventRouter, connected: asyncio.Event) -> None:
    async for item in client.events():
        if isinstance(item, Connected):
            connected.set()
        elif isinstance(item, Event):
            router.dispatch(item)


@pytest.fixture(params=["before", "after"])
async def taprig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TapRig]:
    # The ExternalMedia StasisStart before and (0.3 s) after its REST reply (trace 05).
    sim = AriSimulator(external_media_start=request.param, external_media_delay=0.3)
    await sim.start()
    client = AriClient(sim.url, "callrec", "callrec-secret", "callrec")
    router = EventRouter()
    recorder = MediaRecorder()
    await recorder.start()
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    pub, key, _ = write_keys(tmp_path)
    connected = asyncio.Event()
    pump = asyncio.create_task(_pump(client, router, connected))
    await asyncio.wait_for(connected.wait(), 5)
    try:
        yield TapRig(
            sim, client, router, recorder, spool, PublicKey.load(pub), [PrivateKey.load(key)]
        )
    finally:
        pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pump
        await client.close()
        await recorder.stop()
        await sim.stop()


async def test_tap_records_a_channel_into_a_sealed_recording(taprig: TapRig) -> None:
    caller = await taprig.caller()
    tap = taprig.tap()
    evidence = _evidence(caller)
    recording_id = await tap.start(caller, evidence, caller)
    snoop = taprig.sim.channel(tap.snoop_id)
    assert snoop is not None and snoop.kind == "snoop"
    seen = taprig.router.seen(tap.snoop_id, ["StasisStart"])
    assert seen is not None and seen.raw["args"] == [SNOOP_APP_ARG]
    await asyncio.sleep(1.0)
    result = await tap.stop("test", {"extra": True})
    assert result is not None and result.recording_id == recording_id
    assert result.seal is not None
    path = result.seal.path
    assert path.name == f"{recording_id}.crec"
    assert path.parents[3] == taprig.spool.root  # spool/YYYY/MM/DD/<id>.crec
    assert list(taprig.spool.incoming.iterdir()) == []
    assert str(verify(path, taprig.keys).verdict) == "complete"
    decoded = decode_recording(path, taprig.keys)
    assert decoded.metadata[0]["kind"] == "consent-evidence"
    # The tap names its channels and one start time in the evidence, and the end on stop.
    assert decoded.metadata[0]["channels"]["snoop"] == tap.snoop_id
    assert evidence.recording_started_at == decoded.metadata[-1]["recording_started"]
    assert evidence.recording_ended_at == decoded.metadata[-1]["recording_ended"]
    summary = decoded.metadata[-1]
    assert summary["reason"] == "test" and summary["extra"] is True
    assert summary["packets"]["packets"] == taprig.sim.rtp_stats(tap.media_id).packets_sent
    # The caller is untouched; the tap's channels and bridge are gone.
    assert taprig.sim.channel(caller) is not None
    assert {ch.kind for ch in taprig.sim.channels} == {"caller"}
    assert taprig.sim.bridges == []
    assert await tap.stop("again") is None


async def test_slin16_is_recorded_at_16_khz(taprig: TapRig) -> None:
    caller = await taprig.caller()
    tap = taprig.tap("slin16")
    await tap.start(caller, _evidence(caller), caller)
    await asyncio.sleep(0.5)
    result = await tap.stop("test")
    assert result is not None and result.seal is not None
    decoded = decode_recording(result.seal.path, taprig.keys)
    assert decoded.rate == 16000
    sent = taprig.sim.rtp_stats(tap.media_id)
    assert abs(len(decoded.samples) / 16000 - sent.packets_sent * 0.02) <= 0.02


async def test_a_channel_that_is_gone_makes_the_tap_unavailable(taprig: TapRig) -> None:
    tap = taprig.tap()
    evidence = _evidence("1.999")
    with pytest.raises(RecordingUnavailable, match=r"media setup failed: .*Channel not found"):
        await tap.start("1.999", evidence, "1.999")
    assert evidence.recording_started_at is None
    result = await tap.abandon("media setup failed")
    assert result is not None and result.seal is not None  # evidence sealed, no audio
    assert result.seal.audio_seconds == 0
    assert taprig.sim.bridges == []


async def test_a_missing_spool_fails_before_the_pbx_is_asked(
    taprig: TapRig, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    settings = TapSettings(app="callrec")
    tap = RecordingTap(
        taprig.client, taprig.router, taprig.recorder, Spool(blocker), [taprig.public], settings
    )
    caller = await taprig.caller()
    with pytest.raises(RecordingUnavailable, match="cannot write the spool"):
        await tap.start(caller, _evidence(caller), caller)
    assert {ch.kind for ch in taprig.sim.channels} == {"caller"}
    assert await tap.stop("recording-failed") is None


async def test_pause_and_resume_leave_marks_and_no_audio_between(taprig: TapRig) -> None:
    caller = await taprig.caller()
    tap = taprig.tap()
    await tap.start(caller, _evidence(caller), caller)
    await asyncio.sleep(0.4)
    tap.pause(PauseSource.CONTROL)
    assert tap.paused
    await asyncio.sleep(0.6)
    tap.resume(PauseSource.CONTROL)
    await asyncio.sleep(0.4)
    result = await tap.stop("test")
    assert result is not None and result.seal is not None
    with RecordingReader(result.seal.path, taprig.keys) as reader:
        kinds = [
            type(f).__name__ for f in reader.frames() if isinstance(f, PauseFrame | ResumeFrame)
        ]
    assert kinds == ["PauseFrame", "ResumeFrame"]
    # What arrived while paused was dropped, and only that.
    stats = result.stats
    assert stats["paused"] > 0
    expected = (stats["packets"] - stats["paused"]) * 0.02
    assert abs(result.seal.audio_seconds - expected) <= 0.02


# Short enough for a test, and longer than the recorder's reorder wait.
QUICK_TIMEOUT = 0.3


def _marks(path: Path, keys: list[PrivateKey]) -> list[str]:
    """Pause, resume, gap and media-lost frames in recording order."""
    names: list[str] = []
    with RecordingReader(path, keys) as reader:
        for frame in reader.frames():
            if isinstance(frame, MetadataFrame) and frame.record.get("type") == "media-lost":
                names.append("media-lost")
            elif isinstance(frame, PauseFrame | ResumeFrame | GapFrame):
                names.append(type(frame).__name__)
    return names


async def _until(probe: Callable[[], bool], within: float) -> None:
    """Poll ``probe`` for up to ``within`` seconds; the asserts after it say what failed."""
    for _ in range(round(within / 0.05)):
        if probe():
            return
        await asyncio.sleep(0.05)


async def _watched(taprig: TapRig) -> tuple[RecordingTap, list[str]]:
    """A started tap with a short media timeout, and the failures it reports."""
    caller = await taprig.caller()
    reasons: list[str] = []
    tap = taprig.tap(media_timeout=QUICK_TIMEOUT, on_failure=reasons.append)
    await tap.start(caller, _evidence(caller), caller)
    return tap, reasons


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_media_lost_twice_is_marked_twice_and_reported_once(
    taprig: TapRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callrec.tap")
    # Two silences of 1 s (50 packets), 1 s apart: longer than one check
    # interval past the timeout, so each is seen.
    taprig.sim.rtp_faults("all", drop=[*range(25, 75), *range(125, 175)])
    tap, reasons = await _watched(taprig)

    def backs() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage().startswith("media stream back")]

    await _until(lambda: len(backs()) == 2, 6.0)
    result = await tap.stop("test")
    assert reasons == [MEDIA_LOST]
    assert len(backs()) == 2
    # The second loss is not reported again, but is still logged.
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and errors[0].startswith("media stream lost: no RTP for")
    assert result is not None and result.seal is not None
    assert _marks(result.seal.path, taprig.keys) == ["media-lost", "GapFrame"] * 2
    marks = [
        m
        for m in decode_recording(result.seal.path, taprig.keys).metadata
        if m.get("type") == "media-lost"
    ]
    assert all(m["idle_seconds"] >= QUICK_TIMEOUT for m in marks)
    assert result.stats["lost"] == 100


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_a_paused_tap_does_not_report_media_lost_until_resumed(taprig: TapRig) -> None:
    tap, reasons = await _watched(taprig)
    await asyncio.sleep(0.3)
    tap.pause(PauseSource.CONTROL)
    sent = taprig.sim.rtp_stats(tap.media_id).packets_generated
    taprig.sim.rtp_faults(tap.media_id, drop=range(sent, sent + 100_000))
    await asyncio.sleep(1.2)
    assert reasons == []
    tap.resume(PauseSource.CONTROL)
    await _until(lambda: bool(reasons), 2.0)
    assert reasons == [MEDIA_LOST]
    result = await tap.stop("test")
    assert result is not None and result.seal is not None
    assert _marks(result.seal.path, taprig.keys) == ["PauseFrame", "ResumeFrame", "media-lost"]


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_a_stopped_tap_stops_watching(taprig: TapRig) -> None:
    tap, reasons = await _watched(taprig)
    await asyncio.sleep(0.2)
    await tap.stop("test")
    await asyncio.sleep(1.0)  # no RTP any more: nothing may be reported now
    assert reasons == []
