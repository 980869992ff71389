"""Synthetic test voices: what simulated and test callers say.

No TTS engine or recorded corpus is needed: a voiced-syllable signal has an
irregular 50 ms energy envelope like speech, which is what the end-to-end
checks compare (two seeds give unrelated envelopes).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def speech_like(seconds: float, seed: int = 7, rate: int = 8000) -> npt.NDArray[np.int16]:
    """Voiced syllables of random length, loudness and pitch, with pauses."""
    rng = np.random.default_rng(seed)
    total = int(seconds * rate)
    out = np.zeros(total)
    pos = 0
    while pos < total:
        pos += int(rng.uniform(0.04, 0.35) * rate)  # pause
        n = min(int(rng.uniform(0.08, 0.3) * rate), total - pos)
        if n <= 0:
            break
        t = np.arange(n) / rate
        pitch = rng.uniform(90, 220)
        voice = sum(np.sin(2 * np.pi * k * pitch * t) / k for k in range(1, 6))
        out[pos : pos + n] = voice * np.hanning(n) * rng.uniform(0.2, 1.0)
        pos += n
    peak = float(np.max(np.abs(out))) or 1.0
    return (out / peak * 12000).astype(np.int16)
