from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from callrec.media import g711


def test_known_codes() -> None:
    # ITU-T G.711 reference points: silence and full scale.
    assert g711.ulaw_encode([0, 32767, -32768]) == bytes.fromhex("ff8000")
    assert g711.alaw_encode([0, 32767, -32768]) == bytes.fromhex("d5aa2a")
    assert g711.ulaw_decode(bytes.fromhex("ff7f80")).tolist() == [0, 0, 32124]
    assert g711.alaw_decode(bytes.fromhex("d5aa")).tolist() == [8, 32256]


@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=400))
def test_round_trip_within_quantisation(samples: list[int]) -> None:
    x = np.array(samples, dtype=np.int16).astype(np.int64)
    for enc, dec in ((g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        y = dec(enc(x.astype(np.int16))).astype(np.int64)
        # Companding keeps about 5 % relative error, and absolute error is
        # bounded by the largest step (1024 for µ-law, 1024 for A-law).
        assert np.all(
            np.abs(y - x) <= np.maximum(np.abs(x) // 16, 1024 if abs(x).max() > 31000 else 64) + 8
        )


def test_every_code_decodes_and_reencodes_to_itself() -> None:
    codes = bytes(range(256))
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes
    # µ-law has two zeros (0x7f and 0xff); every other code is its own round trip.
    back = g711.ulaw_encode(g711.ulaw_decode(codes))
    assert [c for c, b in zip(codes, back, strict=True) if c != b] == [0x7F]
