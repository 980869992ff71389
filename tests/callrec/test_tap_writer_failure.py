"""A live tap whose writer refuses to go on (the 7-day limit) mid-call.

The writer refuses what would make a recording longer than its reader
accepts and stays open. The tap must then end the recording the way every
writer failure ends it: the owner told once, the file sealed with the
writer's error as the closing summary's ``failure``, and nothing raised at
whoever asked for the pause, the resume or the end. The week is reached the
way tests/callrec/test_writer_limit.py reaches it: a pause dated a week back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from callrec.crypto.limits import MAX_RECORDING_SECONDS
from callrec.decode import decode_recording
from callrec.media.layout import STEREO, Side
from callrec.pausing import PauseSource
from callrec.recording import (
    AudioFrame,
    Frame,
    MetadataFrame,
    PauseFrame,
    RecordingReader,
    ResumeFrame,
    Verdict,
    verify,
)
from callrec.tap import RecordingTap, TapResult
from tests.callrec.test_tap import TapRig, _evidence, _until, taprig
from tests.callrec.test_tap_stereo_watchdog import _flowing, _stereo_call

__all__ = ["taprig"]  # the fixture, used by name

LIMIT = "would make it longer than 7 days"
PAUSED_AT = 1_795_910_400.0


async def _mixed_call(taprig: TapRig) -> tuple[RecordingTap, list[str]]:
    caller = await taprig.caller()
    reasons: list[str] = []
    tap = taprig.tap(on_failure=reasons.append)
    await tap.start(caller, _evidence(caller), caller)
    await _until(lambda: taprig.sim.rtp_stats(tap.media_id).packets_sent >= 10, 10.0)
    return tap, reasons


def _frames(path: Path, taprig: TapRig) -> list[Frame]:
    with RecordingReader(path, taprig.keys) as reader:
        return list(reader.frames())


def _sealed_files(taprig: TapRig) -> list[Path]:
    return sorted(taprig.spool.root.glob("[0-9]*/*/*/*.crec"))


def _summary(result: TapResult | None, taprig: TapRig) -> dict[str, Any]:
    assert result is not None and result.seal is not None
    assert verify(result.seal.path, taprig.keys).verdict is Verdict.COMPLETE
    summary: dict[str, Any] = decode_recording(result.seal.path, taprig.keys).metadata[-1]
    assert summary["type"] == "summary"
    return summary


@pytest.mark.parametrize("mode", ["mixed", STEREO])
@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_a_resume_past_the_limit_ends_the_recording_paused_and_seals_it_at_once(
    taprig: TapRig, mode: str
) -> None:
    if mode == STEREO:
        tap, reasons = await _stereo_call(taprig)
        await _flowing(taprig, tap, 10)
    else:
        tap, reasons = await _mixed_call(taprig)
    assert tap.pause(PauseSource.CONTROL, at=PAUSED_AT)
    # The agent's code, the control socket or AGI asks; nobody gets an exception.
    assert not tap.resume(PauseSource.AGENT_CODE, at=PAUSED_AT + MAX_RECORDING_SECONDS)
    assert tap.paused  # what a CRM and CALLREC_PAUSED are told: it never resumed
    assert len(reasons) == 1, reasons
    assert reasons[0].startswith(f"recording stopped: recording {tap.recording_id}: a pause")
    assert LIMIT in reasons[0]
    assert not tap.resume(PauseSource.AGENT_CODE, at=PAUSED_AT + MAX_RECORDING_SECONDS)
    assert len(reasons) == 1  # told once

    tap.end_now()  # what the Stasis app does with a failed writer (best-effort)
    await _until(lambda: bool(_sealed_files(taprig)), 10.0)
    [sealed] = _sealed_files(taprig)
    assert list(taprig.spool.incoming.iterdir()) == []  # no .crec.part left
    # The recording's PBX side is gone; the call itself is untouched.
    assert {ch.kind for ch in taprig.sim.channels} == {"caller"}
    assert not tap.recording

    result = await tap.stop("caller-hangup", {"end": "caller-hangup"})
    assert result is not None and result.seal is not None and result.seal.path == sealed
    summary = _summary(result, taprig)
    assert summary["reason"] == "recording-failed" and "end" not in summary
    assert summary["failure"] == reasons[0].removeprefix("recording stopped: ")
    [pause] = summary["pauses"]
    assert (pause["start"], pause["end"], pause["resumed_by"]) == (PAUSED_AT, None, None)
    frames = _frames(sealed, taprig)
    assert not any(isinstance(f, ResumeFrame) for f in frames)
    assert frames[-2] == PauseFrame(PAUSED_AT, "control")  # the file ends paused
    assert any(isinstance(f, AudioFrame) for f in frames)  # what came before stays
    if mode == STEREO:
        assert set(summary["sides"]) == {side.name.lower() for side in Side}


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_a_held_pause_code_released_at_the_limit_does_not_stop_the_seal(
    taprig: TapRig,
) -> None:
    """A pause code's first digit holds the audio in memory; the call ends before the
    code is complete, so the hold is released into a writer that has no room left."""
    tap, reasons = await _mixed_call(taprig)
    room = 1.0  # seconds the recording may still grow, minus what it holds already
    assert tap.pause(PauseSource.CONTROL, at=PAUSED_AT)
    assert tap.resume(PauseSource.CONTROL, at=PAUSED_AT + MAX_RECORDING_SECONDS - room)
    assert tap.pauses.hold()  # the code's first digit
    held_from = taprig.sim.rtp_stats(tap.media_id).packets_sent
    # Twice the room in packets of 20 ms: more than the writer can still take.
    packets = held_from + round(2 * room / 0.02)
    await _until(lambda: taprig.sim.rtp_stats(tap.media_id).packets_sent >= packets, 10.0)
    assert not reasons  # held in memory: nothing refused yet

    result = await tap.stop("caller-hangup")
    summary = _summary(result, taprig)
    assert len(reasons) == 1 and LIMIT in reasons[0], reasons
    assert summary["reason"] == "caller-hangup"
    assert f"recording {tap.recording_id}: audio {LIMIT}" in summary["failure"]
    assert list(taprig.spool.incoming.iterdir()) == []
    assert result is not None and result.seal is not None
    # Audio up to the limit (the refused frame holds at most 5 packets), not past
    # it; the pause's silence counts too.
    total = result.seal.audio_seconds + MAX_RECORDING_SECONDS - room
    assert MAX_RECORDING_SECONDS - 0.1 <= total <= MAX_RECORDING_SECONDS + 1e-6
    assert isinstance(_frames(result.seal.path, taprig)[-1], MetadataFrame)
