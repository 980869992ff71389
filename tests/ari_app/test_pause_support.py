"""The DTMF detector the pause tests trust: a digit left in a recording is found, the
agent's voice (and a click in it) is not, so "no tone left" can fail."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tests.ari_app.pause_support import RATE, agent_voice, dtmf_level


def _with_digit(
    voice: npt.NDArray[np.int16], amplitude: float, seconds: float
) -> npt.NDArray[np.int16]:
    """``voice`` with the digit 5 (770 + 1336 Hz) from 2.5 s, as an inband leak would be."""
    out = voice.astype(np.float64)
    t = np.arange(int(seconds * RATE)) / RATE
    start = int(2.5 * RATE)
    out[start : start + len(t)] += amplitude * (
        np.sin(2 * np.pi * 770 * t) + np.sin(2 * np.pi * 1336 * t)
    )
    return out.astype(np.int16)


def test_a_digit_left_in_the_recording_is_found() -> None:
    voice = agent_voice()
    assert dtmf_level(voice) < 50
    assert dtmf_level(_with_digit(voice, 400, 0.28)) > 300  # an agent's 280 ms digit, faint
    assert dtmf_level(_with_digit(voice, 4000, 0.14)) > 300  # half as long, loud


def test_a_click_in_the_agents_voice_is_no_digit() -> None:
    # A burst for one packet (a lost packet on the real PBX, the edge of a tone)
    # spreads into both groups; a digit lasts far longer.
    voice = agent_voice().astype(np.float64)
    start = int(3.9 * RATE)
    voice[start : start + 40] = 20000 * np.sign(np.sin(np.arange(40)))
    assert dtmf_level(voice.astype(np.int16)) < 300
