"""One side of a stereo recording dies on the real Asterisk; the other records on.

A stereo call (the caller talks throughout; the agent behind ``PJSIP/talker``
as in test_stereo.py). A couple of seconds into the recording the test hangs
up the ExternalMedia channel that carries what the caller hears, so only that
side's RTP stops, as when one stream of a tap dies. Under the default
best-effort policy the call goes on; the audit line is a ``failure`` naming
the callee side, and the sealed file marks the side and keeps the caller's
voice on the left after the mark while the right is silence.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from callrec.decode import decode_recording
from callrec.media.layout import Side
from callrec.media.signals import speech_like
from callrec.recording import AudioFrame, GapFrame, MetadataFrame, RecordingReader, verify
from callrec.testcall.harness import run_scenario

from .conftest import MakeRecorder, Pbx, Recorder, line_of, wait_until
from .test_stereo import TALKER_EXTEN, _stereo_config, talker

pytestmark = pytest.mark.realpbx
__all__ = ["talker"]  # the fixture, used by name

STAYS = 12.0  # seconds the caller stays after the disclosure and grace


def _heard_media(recorder: Recorder, pbx: Pbx) -> str | None:
    """The ExternalMedia channel of what the caller hears, once Asterisk has it."""
    for path in (recorder.spool / "live").glob("*.json"):
        tap = json.loads(path.read_text()).get("tap") or {}
        media = tap.get("heard_media")
        if media and media in {ch["id"] for ch in pbx.channels()}:
            return str(media)
    return None


def _mark_position(path: Path, recorder: Recorder) -> int:
    """The sample frame at which the media-lost mark was written."""
    position = 0
    with RecordingReader(path, recorder.keys) as reader:
        for frame in reader.frames():
            if isinstance(frame, AudioFrame):
                position += len(frame.payload) // 2  # two channels of 1-byte u-law
            elif isinstance(frame, GapFrame):
                position += frame.samples
            elif isinstance(frame, MetadataFrame) and frame.record.get("type") == "media-lost":
                return position
    raise AssertionError("no media-lost mark in the recording")


def _loud(samples: npt.NDArray[np.int16]) -> float:
    return float(np.abs(samples.astype(np.int32)).mean())


async def test_the_heard_side_dies_and_the_callers_side_records_on(
    make_recorder: MakeRecorder, talker: npt.NDArray[np.int16], pbx: Pbx
) -> None:
    recorder = await make_recorder(start=False)
    _stereo_config(recorder.config_path)
    await recorder.start()
    stay = recorder.scenarios(TALKER_EXTEN)["stay"]
    lead = recorder.disclosure_seconds(TALKER_EXTEN) + recorder.config.consent.grace
    hold = lead + STAYS
    options = replace(recorder.options(TALKER_EXTEN), audio=speech_like(hold, seed=33))
    call = asyncio.create_task(run_scenario(replace(stay, hold=hold), options))
    media = await wait_until(lambda: _heard_media(recorder, pbx), 20, "the stereo tap")
    await asyncio.sleep(2.0)  # some of both sides recorded first
    pbx.rest("DELETE", f"/channels/{media}")
    report = await call

    line = line_of(report)
    assert line["event"] == "failure"
    assert line["reason"] == "media stream lost on the callee side"
    assert line["end"] == "caller-hangup"  # best-effort: the call went on
    (path,) = recorder.sealed()
    assert str(verify(path, recorder.keys).verdict) == "complete"
    decoded = decode_recording(path, recorder.keys)
    marks = [m for m in decoded.metadata if m.get("type") in ("media-lost", "media-back")]
    assert [(m["type"], m.get("side")) for m in marks] == [("media-lost", "callee")]
    left, right = decoded.samples[:, Side.CALLER], decoded.samples[:, Side.CALLEE]
    at = _mark_position(path, recorder)
    assert at < len(left) - decoded.rate  # a second or more recorded after the mark
    assert not right[at:].any()
    assert _loud(left[at:]) > 100  # the caller's voice goes on on its own channel
