"""A recorded call whose RTP stops while the call is up: the failure policy applies.

Asterisk sends 50 packets/s while the snoop is in the tap's bridge, even in
silence, so a stream that stops is media lost. The simulator drops a long run
of packets; the watchdog's timeout is shortened on the running app's context
(the only change) so the test takes seconds, not tens of seconds.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from callrec.ari.sim import CallerScenario
from callrec.decode import decode_recording
from callrec.failure_policy import FailurePolicy
from callrec.recording import GapFrame, MetadataFrame, RecordingReader, verify
from tests.ari_app.conftest import DISCLOSURE, GRACE, Rig, wait_until

MEDIA_TIMEOUT = 1.0
SAMPLES_PER_PACKET = 160
# Packet indexes of the ExternalMedia stream: RTP stops 1 s into the
# recording; for best-effort it comes back 3 s later.
LOST_FOR_A_WHILE = range(50, 200)
LOST_FOR_GOOD = range(50, 100_000)


async def _call(rig: Rig, policy: FailurePolicy, drop: range, hangup_after: float) -> str:
    """Start the app under ``policy``, drop ``drop`` of the media, place a call."""
    config = rig.config
    await rig.start_app(replace(config, recording=replace(config.recording, on_failure=policy)))
    assert rig.app is not None and rig.app.ctx is not None
    rig.app.ctx.media_timeout = MEDIA_TIMEOUT
    rig.sim.rtp_faults("all", drop=drop)
    scenario = CallerScenario(exten="100", audio=rig.voice_path, hangup_after=hangup_after)
    return rig.sim.place_call(scenario)


def _lines(caplog: pytest.LogCaptureFixture, level: int, text: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.levelno == level and text in r.getMessage()
    ]


def _media_lost(metadata: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [record for record in metadata if record.get("type") == "media-lost"]


async def test_best_effort_keeps_the_call_and_the_recording_going(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    # The recording starts about 1.2 s after the answer; 3.5 s of audio after
    # the loss leave time to see the stream come back.
    caller = await _call(rig, "best-effort", LOST_FOR_A_WHILE, DISCLOSURE + GRACE + 8.0)
    await wait_until(lambda: _lines(caplog, logging.ERROR, "media stream lost"), 10)
    # The loss is noticed while the caller still talks to the destination.
    assert rig.sim.channel(caller) is not None
    assert [x for x in rig.audit() if x["event"] != "service"] == []  # no call line yet
    await wait_until(lambda: _lines(caplog, logging.INFO, "media stream back"), 10)

    line = await rig.wait_audit(caller)
    assert line["event"] == "failure" and line["reason"] == "media stream lost"
    assert line["end"] == "caller-hangup"  # the call went on until the caller hung up
    (error,) = _lines(caplog, logging.ERROR, "media stream lost")
    assert caller in error and "best-effort" in error
    (back,) = _lines(caplog, logging.INFO, "media stream back")
    assert caller in back

    # One recording, sealed, with the mark where the audio stopped and a gap
    # of exactly the lost packets once it came back.
    path = Path(line["path"])
    assert line["sealed"] is True and str(verify(path, rig.keys).verdict) == "complete"
    metadata = decode_recording(path, rig.keys).metadata
    (mark,) = _media_lost(metadata)
    summary = metadata[-1]
    assert mark["idle_seconds"] >= MEDIA_TIMEOUT
    assert summary["recording_started"] < mark["at"] < summary["recording_ended"]
    with RecordingReader(path, rig.keys) as reader:
        frames = [f for f in reader.frames() if isinstance(f, MetadataFrame | GapFrame)]
    kinds = [f.record.get("type") if isinstance(f, MetadataFrame) else "gap" for f in frames]
    assert kinds[-3:-1] == ["media-lost", "gap"]
    gap = frames[-2]
    assert isinstance(gap, GapFrame)
    assert gap.samples == len(LOST_FOR_A_WHILE) * SAMPLES_PER_PACKET
    assert line["packets"]["lost"] == len(LOST_FOR_A_WHILE)


async def test_strict_ends_the_call_and_seals_the_recording(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    hangup_after = DISCLOSURE + GRACE + 30.0
    caller = await _call(rig, "strict", LOST_FOR_GOOD, hangup_after)
    line = await rig.wait_audit(caller)
    assert line["event"] == "failure" and line["reason"] == "media stream lost"
    assert line["end"] == "recording-unavailable"
    # The app ended the call, long before the caller would have.
    assert line["durations"]["call"] < hangup_after
    assert rig.sim.channel(caller) is None
    assert line["evidence"]["channels"]["destination"] not in {c.id for c in rig.sim.channels}
    (error,) = _lines(caplog, logging.ERROR, "media stream lost")
    assert caller in error and "strict" in error
    assert _lines(caplog, logging.INFO, "media stream back") == []

    path = Path(line["path"])
    assert line["sealed"] is True and str(verify(path, rig.keys).verdict) == "complete"
    metadata = decode_recording(path, rig.keys).metadata
    (mark,) = _media_lost(metadata)
    assert mark["idle_seconds"] >= MEDIA_TIMEOUT
    assert metadata[-1]["type"] == "summary" and metadata[-1]["end"] == "recording-unavailable"
