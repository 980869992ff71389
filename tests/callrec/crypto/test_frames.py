"""Frame encoding (known answers) and the incremental parser over verified plaintext."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callrec.clock import LATEST_WALL
from callrec.crypto import frames
from callrec.crypto.frames import (
    AudioFrame,
    Frame,
    FrameParser,
    GapFrame,
    MetadataFrame,
    PauseFrame,
    ResumeFrame,
)
from callrec.crypto.limits import MAX_AUDIO_FRAME, MAX_METADATA_DEPTH, MAX_METADATA_FRAME
from callrec.errors import FormatError


@pytest.mark.parametrize(
    ("frame", "encoded"),
    [
        (AudioFrame(b"\xff\x7f"), "0100000002ff7f"),
        (AudioFrame(b""), "0100000000"),
        (GapFrame(160), "020000000800000000000000a0"),
        (PauseFrame(1795910400.5), "030000000841dac2dac0200000"),
        (ResumeFrame(0.0), "0400000008" + "00" * 8),
        (MetadataFrame({"a": "é", "n": 1}), "0500000010" + '{"a":"é","n":1}'.encode().hex()),
    ],
)
def test_known_encodings(frame: Frame, encoded: str) -> None:
    assert frames.encode(frame) == bytes.fromhex(encoded)
    assert list(FrameParser().feed(bytes.fromhex(encoded), 0)) == [frame]


def test_refused_values() -> None:
    with pytest.raises(ValueError, match="not finite"):
        frames.encode_pause(float("nan"))
    with pytest.raises(ValueError, match="out of range"):
        frames.encode_gap(-1)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        frames.encode_metadata({"x": float("inf")})
    with pytest.raises(ValueError, match=r"time 253402300800.0 is out of range \(1970..9999\)"):
        frames.encode_resume(253402300800.0)
    with pytest.raises(ValueError, match=f"audio frame of {MAX_AUDIO_FRAME + 1} bytes"):
        frames.audio_prefix(MAX_AUDIO_FRAME + 1)
    with pytest.raises(ValueError, match=f"nested deeper than {MAX_METADATA_DEPTH} levels"):
        frames.encode_metadata({"x": _nested(MAX_METADATA_DEPTH)})
    with pytest.raises(ValueError, match=f"at most {MAX_METADATA_FRAME}"):
        frames.encode_metadata({"x": "a" * MAX_METADATA_FRAME})


def _nested(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


_frame = st.one_of(
    st.builds(AudioFrame, st.binary(max_size=300)),
    st.builds(GapFrame, st.integers(0, (1 << 64) - 1)),
    st.builds(PauseFrame, st.floats(0.0, LATEST_WALL)),
    st.builds(ResumeFrame, st.floats(0.0, LATEST_WALL)),
    st.builds(
        MetadataFrame, st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3)
    ),
)


@given(st.lists(_frame, max_size=20), st.lists(st.integers(1, 50), min_size=1, max_size=10))
def test_frames_straddling_any_cut(items: list[Frame], cuts: list[int]) -> None:
    data = b"".join(frames.encode(f) for f in items)
    parser, pos, i = FrameParser(), 0, 0
    got: list[Frame] = []
    while pos < len(data):
        step = cuts[i % len(cuts)]
        got.extend(parser.feed(data[pos : pos + step], i))
        pos, i = pos + step, i + 1
    parser.finish(i)
    assert got == items
    assert parser.pending == 0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("0900000000", "unknown frame type 0x09"),
        ("020000000400000000", "frame type 2 has 4 bytes, expected 8"),
        ("05000000025b5d", "metadata frame is not a JSON object"),
        (
            "0500000001ff",
            "metadata frame is not JSON: 'utf-8' codec can't decode byte 0xff in position 0: "
            "invalid start byte",
        ),
        ("05000000037b7d00", "metadata frame is not JSON: Extra data: line 1 column 3 (char 2)"),
        (
            "050000000b" + b'{"a":1e400}'.hex(),
            "metadata frame is not JSON: number 1e400 is out of range",
        ),
        (
            "0500000009" + b'{"a":NaN}'.hex(),
            "metadata frame is not JSON: NaN is not JSON",
        ),
        ("0300000008fff0000000000000", "pause time -inf is not a date"),
        ("0400000008" + "ff" * 8, "resume time nan is not a date"),
        ("02ffffffff", "frame type 2 has 4294967295 bytes, expected 8"),
        ("0501000001", f"metadata frame of 16777217 bytes, at most {MAX_METADATA_FRAME}"),
        ("01ffffffff", f"audio frame of 4294967295 bytes, at most {MAX_AUDIO_FRAME}"),
    ],
)
def test_bad_frames_name_the_segment(data: str, message: str) -> None:
    with pytest.raises(FormatError) as info:
        list(FrameParser().feed(bytes.fromhex(data), 7))
    assert (info.value.segment, info.value.message) == (7, message)


def test_stream_ending_inside_a_frame() -> None:
    parser = FrameParser()
    assert list(parser.feed(bytes.fromhex("0100000004ff"), 0)) == []
    assert parser.pending == 6
    with pytest.raises(
        FormatError, match=r"^segment 3: stream ends inside a frame \(6 bytes left over\)$"
    ):
        parser.finish(3)


@pytest.mark.parametrize("depth", [MAX_METADATA_DEPTH + 1, 100_000])
def test_metadata_nested_too_deep_is_refused_without_recursion(depth: int) -> None:
    body = b'{"a":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"
    data = frames.FRAME_HEADER.pack(frames.METADATA, len(body)) + body
    with pytest.raises(FormatError) as info:
        list(FrameParser().feed(data, 2))
    assert info.value.message == f"metadata nested deeper than {MAX_METADATA_DEPTH} levels"
    fits = b'{"a":' + b"[" * (MAX_METADATA_DEPTH - 1) + b"]" * (MAX_METADATA_DEPTH - 1) + b"}"
    ok = frames.FRAME_HEADER.pack(frames.METADATA, len(fits)) + fits
    assert len(list(FrameParser().feed(ok, 0))) == 1


def test_an_oversized_frame_is_refused_from_its_header_before_its_body_arrives() -> None:
    parser = FrameParser()
    assert list(parser.feed(b"\x01\x01", 0)) == []  # the header is cut: not known yet
    with pytest.raises(FormatError, match="audio frame of 16777217 bytes"):
        list(parser.feed(b"\x00\x00\x01" + b"\xff" * 100, 1))
