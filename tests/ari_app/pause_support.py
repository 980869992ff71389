"""What an agent says around a pause, and how to find it again in a decrypted recording.

The agent says three things, each a tone of its own pitch: A before the pause,
B while paused, C after it. A recording is right when A and C are in it, B
is not, and C starts as long after A as it was said (the pause rendered as
silence of its true length). None of the pitches is a DTMF frequency.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RATE = 8000
WINDOW = 0.02  # seconds per level measured


@dataclass(frozen=True)
class Said:
    """One thing the agent says: a tone of ``pitch`` Hz from ``start`` to ``end`` s."""

    pitch: float
    start: float
    end: float


BEFORE = Said(400.0, 0.8, 2.0)
DURING = Said(1050.0, 3.2, 4.6)
AFTER = Said(1850.0, 6.0, 7.4)


def agent_voice(
    said: tuple[Said, ...] = (BEFORE, DURING, AFTER), seconds: float = 12.0
) -> npt.NDArray[np.int16]:
    """The agent's audio from its answer: silence but for ``said``."""
    out = np.zeros(int(seconds * RATE), dtype=np.float64)
    for part in said:
        first, last = int(part.start * RATE), int(part.end * RATE)
        t = np.arange(last - first) / RATE
        out[first:last] = 8000 * np.sin(2 * np.pi * part.pitch * t)
    return out.astype(np.int16)


def levels(
    samples: npt.NDArray[np.int16], pitch: float, window: float = WINDOW
) -> npt.NDArray[np.float64]:
    """The amplitude of ``pitch`` in each ``window`` of ``samples`` (Hann-weighted, so
    a loud tone of another pitch leaks little into it)."""
    n = int(window * RATE)
    usable = len(samples) // n * n
    blocks = samples[:usable].astype(np.float64).reshape(-1, n)
    t = np.arange(n) / RATE
    hann = np.hanning(n)
    probe = hann * np.exp(-2j * np.pi * pitch * t)
    amplitude: npt.NDArray[np.float64] = np.abs(blocks @ probe) * 2 / hann.sum()
    return amplitude


# A digit the agent sends lasts 280 ms (sip-tester's RFC 4733 pcaps): held over
# this many 40 ms windows in a row. The edge of other audio (a tone starting, a
# lost packet's click on the real PBX) spreads into both groups for a window or two.
DTMF_WINDOWS = 3


def dtmf_level(samples: npt.NDArray[np.int16]) -> float:
    """How loud the loudest DTMF digit in ``samples`` is: a digit is a low-group and a
    high-group pitch at once, held, so the weaker of the two counts, window by
    window, and the weakest of :data:`DTMF_WINDOWS` windows in a row."""
    low = np.max([levels(samples, f, 0.04) for f in (697, 770, 852, 941)], axis=0)
    high = np.max([levels(samples, f, 0.04) for f in (1209, 1336, 1477, 1633)], axis=0)
    both = np.minimum(low, high)
    if len(both) < DTMF_WINDOWS:
        return 0.0
    held = np.lib.stride_tricks.sliding_window_view(both, DTMF_WINDOWS).min(axis=1)
    return float(held.max(initial=0.0))


def onset(samples: npt.NDArray[np.int16], said: Said) -> float | None:
    """Seconds into ``samples`` where ``said`` is first heard, or None when it never is."""
    heard = np.flatnonzero(levels(samples, said.pitch) > 2000)
    return None if heard.size == 0 else float(heard[0] * WINDOW)


def heard_seconds(samples: npt.NDArray[np.int16], said: Said) -> float:
    """How long ``said`` is heard in ``samples``."""
    return float(np.count_nonzero(levels(samples, said.pitch) > 2000) * WINDOW)
