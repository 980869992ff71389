"""Ten SIP callers at once on a real Asterisk: each recording holds its own caller's voice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from callrec.audio import envelope_correlation, resample
from callrec.decode import decode_recording
from callrec.media.signals import speech_like
from callrec.testcall.checks import find_recording, sent_before_recording
from callrec.testcall.harness import RATE, caller_audio, run_scenario

from .conftest import STASIS_EXTEN, Recorder, assert_ok, line_of

pytestmark = pytest.mark.realpbx

CALLS = 10


async def test_ten_concurrent_callers_each_get_their_own_recording(recorder: Recorder) -> None:
    stay = recorder.scenarios()["stay"]
    voices = [speech_like(30.0, seed=200 + i) for i in range(CALLS)]
    reports = await asyncio.gather(
        *(run_scenario(stay, recorder.options(STASIS_EXTEN, audio=voice)) for voice in voices)
    )
    assert_ok(*reports)
    lines = [line_of(r) for r in reports]
    assert len({line["channel"] for line in lines}) == CALLS
    assert len({line["recording_id"] for line in lines}) == CALLS

    # Each recording follows its own caller better than any other caller.
    for i, line in enumerate(lines):
        path = find_recording(recorder.spool, line["recording_id"])
        assert isinstance(path, Path)
        got = resample(decode_recording(path, recorder.keys).mono(), 8000, RATE)
        start = sent_before_recording(line, RATE)
        scores = []
        for voice in voices:
            sent = caller_audio(voice, stay.hold)[start : start + len(got)]
            n = min(len(sent), len(got))
            scores.append(envelope_correlation(sent[:n], got[:n], RATE))
        best = max(range(CALLS), key=scores.__getitem__)
        assert best == i, f"call {i}: correlations {[round(s, 2) for s in scores]}"
