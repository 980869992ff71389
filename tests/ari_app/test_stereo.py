"""Stereo recordings end to end: simulator -> app -> one sealed 2-channel file.

The caller talks while the agent is silent, then the agent talks while the
caller is silent. Left must follow the caller and right the agent (energy
envelopes correlated at least 0.6), the crossed pairs must not. Loss on the
agent's stream leaves silence on the right channel alone.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile as sf

from callrec.ari.sim import CallerScenario, EndpointBehaviour
from callrec.audio import envelope_correlation
from callrec.decode import decode_recording
from callrec.media.g711 import ulaw_decode, ulaw_encode
from callrec.media.signals import speech_like
from callrec.recording import verify
from callrec.tap import RecordingTap
from tests.ari_app.conftest import DISCLOSURE, GRACE, RATE, Rig, wait_until

TALK = 3.0  # seconds each party talks while the other is silent
# The caller's speech covers the disclosure, the grace and the connection too.
LEAD = DISCLOSURE + GRACE + 0.5


def _stereo_for(rig: Rig, number: str = "100") -> None:
    """Calls to ``number`` recorded in stereo; every other number stays mixed."""
    with rig.config_path.open("a", encoding="utf-8") as f:
        f.write(f'\n[recording.numbers."{number}"]\nchannels = "stereo"\n')


def _turns() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    """(caller, agent): the caller talks first, then the agent (each from its answer)."""
    caller = np.concatenate([speech_like(LEAD + TALK, seed=21), np.zeros(RATE * 6, np.int16)])
    agent = np.concatenate([np.zeros(int(RATE * TALK), np.int16), speech_like(TALK, seed=22)])
    return caller, np.concatenate([agent, np.zeros(RATE * 3, np.int16)])


def _seconds_between(times: dict[str, Any], start: str, end: str) -> float:
    return (
        datetime.fromisoformat(times[end]) - datetime.fromisoformat(times[start])
    ).total_seconds()


async def test_left_follows_the_caller_and_right_the_agent(rig: Rig) -> None:
    _stereo_for(rig)
    caller_voice, agent_voice = _turns()
    rig.sim.add_endpoint(
        "PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1, audio=agent_voice)
    )
    await rig.start_app()
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=caller_voice, hangup_after=LEAD + 2 * TALK + 0.5)
    )
    line = await rig.wait_audit(caller)
    path = Path(line["path"])
    assert str(verify(path, rig.keys).verdict) == "complete"
    decoded = decode_recording(path, rig.keys)
    assert decoded.channels == 2 and decoded.samples.shape[1] == 2
    left, right = decoded.samples[:, 0], decoded.samples[:, 1]
    assert decoded.metadata[-1]["channels"] == "stereo"
    channels = line["evidence"]["channels"]
    assert channels["heard_snoop"] != channels["snoop"]

    # Where the recording starts in each party's audio: the caller's from its
    # answer; the agent answers just before the recording starts (the lag
    # search of envelope_correlation absorbs that much).
    offset = int(_seconds_between(line["evidence"]["times"], "answer", "recording_start") * RATE)
    said = caller_voice[offset : offset + len(left)]
    heard = agent_voice[: len(right)]
    assert envelope_correlation(said, left, RATE) >= 0.6
    assert envelope_correlation(heard, right, RATE) >= 0.6
    assert envelope_correlation(said, right, RATE) < 0.3
    assert envelope_correlation(heard, left, RATE) < 0.3


async def test_a_number_without_its_own_setting_stays_mixed(rig: Rig) -> None:
    _stereo_for(rig, "999")
    await rig.start_app()
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 1.5)
    )
    line = await rig.wait_audit(caller)
    decoded = decode_recording(Path(line["path"]), rig.keys)
    assert decoded.channels == 1 and decoded.samples.ndim == 1
    assert decoded.metadata[-1]["channels"] == "mixed"
    assert "heard_snoop" not in line["evidence"]["channels"]
    assert [ch.kind for ch in rig.sim.channels].count("snoop") == 0


async def test_loss_on_the_agents_stream_is_silence_on_the_right_alone(rig: Rig) -> None:
    _stereo_for(rig)
    agent_voice = speech_like(20.0, seed=23)
    rig.sim.add_endpoint(
        "PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1, audio=agent_voice)
    )
    app = await rig.start_app()
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 4.0)
    )
    assert app.ctx is not None
    ctx = app.ctx

    def heard_media() -> str | None:
        taps: list[RecordingTap] = [t for t in ctx.taps if t.recording]
        media = taps[0].heard_leg.media_id if taps else None
        return media if media is not None and rig.sim.channel(media) is not None else None

    media = await wait_until(heard_media, 10)
    dropped = set(range(60, 110))  # a second of the agent's side, once it flows
    rig.sim.rtp_faults(media, drop=dropped)
    line = await rig.wait_audit(caller)
    sent = rig.sim.rtp_stats(media)
    assert set(sent.dropped) == dropped
    decoded = decode_recording(Path(line["path"]), rig.keys)
    left, right = decoded.samples[:, 0].astype(np.int32), decoded.samples[:, 1].astype(np.int32)
    quiet_right = _runs(np.abs(right) == 0, RATE // 10)
    hole = max(quiet_right, key=lambda run: run[1] - run[0])
    # The second lost on the right is silence there, at most a packet off...
    assert abs((hole[1] - hole[0]) - len(dropped) * 160) <= 160
    # ...while the caller's side goes on speaking through it.
    assert np.abs(left[hole[0] : hole[1]]).mean() > 500
    assert line["packets"]["lost"] == len(dropped)
    assert line["durations"]["gaps"] == len(dropped) * 0.02


def _runs(mask: npt.NDArray[np.bool_], at_least: int) -> list[tuple[int, int]]:
    """(start, end) of the runs of True at least ``at_least`` long."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], mask.astype(np.int8), [0]])))
    runs = list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))
    return [(a, b) for a, b in runs if b - a >= at_least]


async def test_a_prompt_played_to_the_caller_while_recording_is_on_the_right(rig: Rig) -> None:
    # Neither party says anything; a prompt played to the caller mid-call is
    # what the caller hears, so it is on the right channel and not the left.
    _stereo_for(rig)
    app = await rig.start_app()
    caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=DISCLOSURE + GRACE + 3.0))
    assert app.ctx is not None
    ctx = app.ctx
    tap: RecordingTap = await wait_until(lambda: next((t for t in ctx.taps if t.recording), None))
    heard = tap.heard_leg.media_id
    await wait_until(lambda: rig.sim.channel(heard) and rig.sim.rtp_stats(heard).packets_sent)
    await ctx.client.play(caller, "sound:callrec/not-available", lang="en")
    line = await rig.wait_audit(caller)
    decoded = decode_recording(Path(line["path"]), rig.keys)
    left, right = decoded.samples[:, 0], decoded.samples[:, 1]
    # The whole prompt, as G.711 carries it, and nothing else.
    wav = rig.out / "sounds" / "en" / "callrec" / "not-available.wav"
    prompt, _ = sf.read(str(wav), dtype="int16")
    carried = ulaw_decode(ulaw_encode(prompt))
    assert np.count_nonzero(carried) > 400  # the prompt says something
    assert np.count_nonzero(right) == np.count_nonzero(carried)
    assert not left.any()
