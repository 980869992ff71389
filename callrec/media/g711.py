"""G.711 µ-law and A-law (ITU-T G.711), vectorised with numpy.

Decoding uses 256-entry tables; encoding uses a 65,536-entry table indexed by
the 16-bit sample, so both directions are one numpy ``take`` per buffer.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

_BIAS = 0x84


def _ulaw_decode_byte(u: int) -> int:
    u = ~u & 0xFF
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    sample = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return -sample if sign else sample


def _alaw_decode_byte(a: int) -> int:
    a ^= 0x55
    sign = a & 0x80
    exponent = (a >> 4) & 0x07
    mantissa = a & 0x0F
    if exponent == 0:
        sample = (mantissa << 4) + 8
    else:
        sample = ((mantissa << 4) + 0x108) << (exponent - 1)
    return sample if sign else -sample


def _ulaw_encode_sample(s: int) -> int:
    # 14-bit domain as in the ITU reference (and CPython's audioop).
    v = s >> 2
    mask = 0x7F if v < 0 else 0xFF
    v = min(-v if v < 0 else v, 8159) + 0x21
    seg = max(v.bit_length() - 6, 0)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((v >> (seg + 1)) & 0x0F)) ^ mask


def _alaw_encode_sample(s: int) -> int:
    sign = 0x80 if s >= 0 else 0
    mag = s if s >= 0 else -s - 1
    mag = min(mag, 0x7FFF)
    if mag < 256:
        code = mag >> 4
    else:
        exponent = mag.bit_length() - 8
        code = (exponent << 4) | ((mag >> (exponent + 3)) & 0x0F)
    return (sign | code) ^ 0x55


_ULAW_DEC = np.array([_ulaw_decode_byte(i) for i in range(256)], dtype=np.int16)
_ALAW_DEC = np.array([_alaw_decode_byte(i) for i in range(256)], dtype=np.int16)
_ALL = range(-32768, 32768)
# Index with (sample & 0xFFFF), i.e. the sample reinterpreted as uint16.
_ULAW_ENC = np.roll(np.array([_ulaw_encode_sample(s) for s in _ALL], dtype=np.uint8), -32768)
_ALAW_ENC = np.roll(np.array([_alaw_encode_sample(s) for s in _ALL], dtype=np.uint8), -32768)


def ulaw_decode(data: bytes) -> Int16Array:
    """µ-law bytes to 16-bit linear samples."""
    return _ULAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Int16Array:
    """A-law bytes to 16-bit linear samples."""
    return _ALAW_DEC[np.frombuffer(data, dtype=np.uint8)]


def ulaw_encode(samples: npt.ArrayLike) -> bytes:
    """16-bit linear samples to µ-law bytes."""
    idx = np.asarray(samples, dtype=np.int16).view(np.uint16)
    return bytes(_ULAW_ENC[idx].tobytes())


def alaw_encode(samples: npt.ArrayLike) -> bytes:
    """16-bit linear samples to A-law bytes."""
    idx = np.asarray(samples, dtype=np.int16).view(np.uint16)
    return bytes(_ALAW_ENC[idx].tobytes())


ULAW_SILENCE = 0xFF
ALAW_SILENCE = 0xD5
