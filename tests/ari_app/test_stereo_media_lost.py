"""A stereo call whose one side's RTP stops for good while the other's goes on.

The app under each failure policy, the simulator dropping every packet of
the stream of what the caller hears (the agent's side) from a moment on;
the watchdog's timeout is shortened on the running app's context, as in
test_media_lost.py. What a user notices: the audit line's reason names the
side; best-effort talks on and the recording keeps the caller's side, strict
ends the call and seals the recording with the side's mark.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callrec.ari.sim import CallerScenario, EndpointBehaviour
from callrec.decode import decode_recording
from callrec.failure_policy import FailurePolicy
from callrec.media.layout import Side
from callrec.media.signals import speech_like
from callrec.recording import AudioFrame, GapFrame, MetadataFrame, RecordingReader, verify
from callrec.tap import RecordingTap
from tests.ari_app.conftest import DISCLOSURE, GRACE, RATE, Rig, wait_until

MEDIA_TIMEOUT = 0.6
CALLEE_LOST = "media stream lost on the callee side"


async def _call(rig: Rig, policy: FailurePolicy, hangup_after: float) -> tuple[str, str, int]:
    """A stereo call under ``policy`` whose callee-side stream stops once it flows:
    (caller channel, that stream's channel, packets it had made by then)."""
    with rig.config_path.open("a", encoding="utf-8") as f:
        f.write('\n[recording.numbers."100"]\nchannels = "stereo"\n')
    rig.sim.add_endpoint(
        "PJSIP/agent",
        EndpointBehaviour(kind="answer", answer_after=0.1, audio=speech_like(30.0, seed=23)),
    )
    config = rig.config
    app = await rig.start_app(
        replace(config, recording=replace(config.recording, on_failure=policy))
    )
    assert app.ctx is not None
    ctx = app.ctx
    ctx.media_timeout = MEDIA_TIMEOUT
    scenario = CallerScenario(exten="100", audio=rig.voice_path, hangup_after=hangup_after)
    caller = rig.sim.place_call(scenario)

    def heard_media() -> str | None:
        taps: list[RecordingTap] = [t for t in ctx.taps if t.recording]
        media = taps[0].heard_leg.media_id if taps else None
        stats = rig.sim.engine.rtp_stats.get(media or "")
        return media if stats is not None and stats.packets_sent >= 25 else None

    media: str = await wait_until(heard_media, 10)
    made = rig.sim.rtp_stats(media).packets_generated
    rig.sim.rtp_faults(media, drop=range(made, made + 1_000_000))
    return caller, media, made


def _marks(metadata: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in metadata if m.get("type") in ("media-lost", "media-back")]


def _mark_position(path: Path, rig: Rig) -> int:
    """The sample frame at which the recording's media-lost mark was written."""
    position = 0
    with RecordingReader(path, rig.keys) as reader:
        for frame in reader.frames():
            if isinstance(frame, AudioFrame):
                position += len(frame.payload) // 2  # 2 channels of 1-byte u-law
            elif isinstance(frame, GapFrame):
                position += frame.samples
            elif isinstance(frame, MetadataFrame) and frame.record.get("type") == "media-lost":
                return position
    raise AssertionError("no media-lost mark")


async def test_best_effort_talks_on_and_keeps_the_callers_side(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caller, _, _ = await _call(rig, "best-effort", DISCLOSURE + GRACE + 5.0)
    error = await wait_until(
        lambda: [
            r.getMessage()
            for r in caplog.records
            if r.levelno == logging.ERROR and CALLEE_LOST in r.getMessage()
        ],
        10,
    )
    assert "best-effort" in error[0]
    assert rig.sim.channel(caller) is not None  # the call goes on

    line = await rig.wait_audit(caller)
    assert line["event"] == "failure" and line["reason"] == CALLEE_LOST
    assert line["end"] == "caller-hangup"
    path = Path(line["path"])
    assert line["sealed"] is True and str(verify(path, rig.keys).verdict) == "complete"
    decoded = decode_recording(path, rig.keys)
    (mark,) = _marks(decoded.metadata)
    assert mark["type"] == "media-lost" and mark["side"] == "callee"
    # The right channel has the agent's voice until its stream stopped (the
    # mark, written when the loss was noticed, says how long before), then
    # silence to the end, while the caller's side keeps its voice throughout.
    left, right = decoded.samples[:, Side.CALLER], decoded.samples[:, Side.CALLEE]
    at = _mark_position(path, rig)
    stopped = at - round(mark["idle_seconds"] * RATE)
    assert stopped > RATE // 2 and at < len(right) - RATE
    assert np.abs(right[:stopped].astype(np.int32)).mean() > 100
    assert not right[stopped:].any()
    assert np.abs(left[at:].astype(np.int32)).mean() > 100


async def test_strict_ends_the_call_and_names_the_side(rig: Rig) -> None:
    hangup_after = DISCLOSURE + GRACE + 30.0
    caller, _, _ = await _call(rig, "strict", hangup_after)
    line = await rig.wait_audit(caller)
    assert line["event"] == "failure" and line["reason"] == CALLEE_LOST
    assert line["end"] == "recording-unavailable"
    assert line["durations"]["call"] < hangup_after  # the app ended it
    assert rig.sim.channel(caller) is None
    path = Path(line["path"])
    assert line["sealed"] is True and str(verify(path, rig.keys).verdict) == "complete"
    metadata = decode_recording(path, rig.keys).metadata
    (mark,) = _marks(metadata)
    assert mark["side"] == "callee" and mark["idle_seconds"] >= MEDIA_TIMEOUT
    assert metadata[-1]["end"] == "recording-unavailable"
