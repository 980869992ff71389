"""Damaged, cut and tampered recordings: every failure gets its verdict and names its place."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from callrec.crypto.keys import PrivateKey
from callrec.crypto.stream import CIPHERTEXT_SEGMENT_SIZE, FIRST_CIPHERTEXT_SEGMENT_SIZE
from callrec.errors import FormatError, NoMatchingKeyError, TruncatedError
from callrec.recording import (
    AudioFrame,
    Frame,
    RecordingReader,
    RecordingWriter,
    Verdict,
    read_header,
    verify,
)

KEY = PrivateKey.generate()
OTHER = PrivateKey.generate()
STREAM_HEADER = 40


def _record(folder: Path, payloads: int, name: str = "rec.crec") -> tuple[Path, list[Frame]]:
    """A sealed recording of ``payloads`` distinct 160-byte audio frames."""
    writer = RecordingWriter.create(folder, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    frames: list[Frame] = []
    for i in range(payloads):
        payload = i.to_bytes(2, "big") * 80
        writer.write_audio(payload)
        frames.append(AudioFrame(payload))
    return writer.close(folder / name).path, frames


def _segments(data: bytes, header_size: int) -> tuple[bytes, list[bytes]]:
    """Split a file into (header + stream header, [segment ciphertexts])."""
    start = header_size + STREAM_HEADER
    out, pos, size = [], start, FIRST_CIPHERTEXT_SEGMENT_SIZE
    while pos < len(data):
        out.append(data[pos : pos + size])
        pos += size
        size = CIPHERTEXT_SEGMENT_SIZE
    return data[:start], out


def _read(path: Path, keys: list[PrivateKey] | None = None) -> tuple[list[Frame], RecordingReader]:
    with RecordingReader(path, keys or [KEY]) as reader:
        return list(reader.frames()), reader


def test_truncation_at_every_byte_of_a_three_segment_part(tmp_path: Path) -> None:
    sealed, frames = _record(tmp_path, 60)  # 60 * 165 bytes: segments 0, 1 and a short final 2
    part = tmp_path / "cut.crec.part"
    data = sealed.read_bytes()
    hsize = read_header(sealed).header_size
    seg1_end = hsize + STREAM_HEADER + FIRST_CIPHERTEXT_SEGMENT_SIZE
    seg2_end = seg1_end + CIPHERTEXT_SEGMENT_SIZE
    assert seg2_end < len(data)
    part.write_bytes(data)
    for length in range(len(data), -1, -1):
        os.truncate(part, length)
        result = verify(part, [KEY])
        if length == len(data):
            assert result.verdict is Verdict.COMPLETE
            continue
        assert result.verdict is Verdict.TRUNCATED, length
        assert isinstance(result.error, TruncatedError), length
        expected_segments = 2 if length >= seg2_end else 1 if length >= seg1_end else 0
        assert result.segments == expected_segments, length
        if length == 0:
            assert result.error.message == "file is empty, not a callrec recording"
        elif length < hsize:
            assert result.error.message.startswith("file ends inside the header"), length
        elif length < hsize + STREAM_HEADER:
            assert result.error.message == "stream header missing (file ends after the header)"
        elif length in (seg1_end, seg2_end):
            assert result.error.message == "final segment missing"
            assert result.error.segment == expected_segments
        else:
            assert result.error.segment == expected_segments, length
        if length >= hsize:
            got, reader = _read(part)
            assert got == frames[: len(got)]  # only whole frames from verified segments
            assert reader.audio_seconds == result.audio_seconds == len(got) * 160 / 8000


def test_sealed_file_cut_is_invalid(tmp_path: Path) -> None:
    sealed, _frames = _record(tmp_path, 60)
    data = sealed.read_bytes()
    os.truncate(sealed, len(data) - 1)
    result = verify(sealed, [KEY])
    assert result.verdict is Verdict.INVALID
    assert result.error is not None
    assert result.error.segment == 2


def test_every_tag_byte_flipped(tmp_path: Path) -> None:
    sealed, frames = _record(tmp_path, 60)
    data = sealed.read_bytes()
    head, segments = _segments(data, read_header(sealed).header_size)
    assert len(segments) == 3
    for index, segment in enumerate(segments):
        for i in range(len(segment) - 16, len(segment)):
            bad = bytearray(segment)
            bad[i] ^= 0x01
            damaged = [*segments[:index], bytes(bad), *segments[index + 1 :]]
            sealed.write_bytes(head + b"".join(damaged))
            got, reader = _read(sealed)
            assert reader.verdict is Verdict.INVALID
            assert reader.error is not None
            assert reader.error.segment == index
            assert "authentication failed" in reader.error.message
            assert got == frames[: len(got)]
            assert reader.segments_verified == index


def _rebuild(path: Path, head: bytes, segments: list[bytes]) -> tuple[Verdict, FormatError]:
    path.write_bytes(head + b"".join(segments))
    _frames, reader = _read(path)
    assert reader.verdict is not None
    assert reader.error is not None
    return reader.verdict, reader.error


def test_reordered_duplicated_dropped_spliced_segments(tmp_path: Path) -> None:
    sealed, _ = _record(tmp_path, 110)  # segments 0..3 full-size, 4 final
    other, _ = _record(tmp_path, 110, "other.crec")
    head, segs = _segments(sealed.read_bytes(), read_header(sealed).header_size)
    _ohead, osegs = _segments(other.read_bytes(), read_header(other).header_size)
    assert len(segs) == 5
    target = tmp_path / "edited.crec"

    verdict, err = _rebuild(target, head, [segs[0], segs[2], segs[1], segs[3], segs[4]])
    assert (verdict, err.segment) == (Verdict.INVALID, 1)
    assert err.message == "holds segment 2: segment 1 dropped or segments reordered"

    verdict, err = _rebuild(target, head, [segs[0], segs[1], segs[1], segs[2], segs[3], segs[4]])
    assert (verdict, err.segment) == (Verdict.INVALID, 2)
    assert err.message == "holds segment 1: duplicated or reordered"

    verdict, err = _rebuild(target, head, [segs[0], segs[1], segs[3], segs[4]])
    assert (verdict, err.segment) == (Verdict.INVALID, 2)
    assert err.message == "holds segment 3: segment 2 dropped or segments reordered"

    verdict, err = _rebuild(target, head, [segs[0], osegs[1], segs[2], segs[3], segs[4]])
    assert (verdict, err.segment) == (Verdict.INVALID, 1)
    assert err.message.startswith("authentication failed")

    verdict, err = _rebuild(target, head, segs[:4])
    assert (verdict, err.segment, err.message) == (Verdict.INVALID, 4, "final segment missing")

    # The same damage in a never-sealed .part: a missing end is a crash, a hole is not.
    part = tmp_path / "edited.crec.part"
    verdict, err = _rebuild(part, head, segs[:4])
    assert (verdict, err.segment) == (Verdict.TRUNCATED, 4)
    verdict, err = _rebuild(part, head, [segs[0], segs[2], segs[1], segs[3], segs[4]])
    assert (verdict, err.segment) == (Verdict.INVALID, 1)


def _expected_field(offset: int) -> str:
    # Offsets of a one-recipient X25519 version-2 header (docs/FORMAT.md).
    spans = [
        (8, "magic"),
        (9, "version"),
        (25, "recipients[0]"),  # recording id is bound into the HPKE info
        (26, "codec"),
        (30, "sample_rate"),
        (31, "channels"),
        (39, "created_at"),
        (71, "signer"),
        (72, "recipients"),
        (73, "recipients[0].kem"),
        (89, "recipients"),  # key id no longer matches: no recipient
        (91, "recipients[0].wrapped_key"),
        (171, "recipients[0]"),
        (203, "header_mac"),
        (239, "field_tags"),
    ]
    return next(name for end, name in spans if offset < end)


def test_every_header_byte_edited_names_the_field(tmp_path: Path) -> None:
    sealed, _ = _record(tmp_path, 3)
    data = sealed.read_bytes()
    assert read_header(sealed).header_size == 239
    target = tmp_path / "edited.crec"
    for offset in range(239):
        bad = bytearray(data)
        bad[offset] ^= 0x01
        target.write_bytes(bytes(bad))
        with pytest.raises(FormatError) as info:
            RecordingReader(target, [KEY])
        assert info.value.field == _expected_field(offset), offset
        assert verify(target, [KEY]).verdict is Verdict.INVALID


def test_valid_looking_edits_fail_authentication(tmp_path: Path) -> None:
    sealed, _ = _record(tmp_path, 3)
    data = bytearray(sealed.read_bytes())
    data[25] = 2  # ulaw -> alaw: still parses
    sealed.write_bytes(bytes(data))
    assert read_header(sealed).codec == "alaw"  # the public header alone is not authenticated
    with pytest.raises(FormatError, match=r"^header field codec: codec was edited"):
        RecordingReader(sealed, [KEY])


def test_stanza_moved_from_another_recording(tmp_path: Path) -> None:
    one, _ = _record(tmp_path, 3, "one.crec")
    two, _ = _record(tmp_path, 3, "two.crec")
    a, b = one.read_bytes(), two.read_bytes()
    one.write_bytes(a[:72] + b[72:171] + a[171:])
    with pytest.raises(FormatError) as info:
        RecordingReader(one, [KEY])
    assert info.value.field == "recipients[0]"
    assert "copied from another recording" in info.value.message


def test_wrong_key(tmp_path: Path) -> None:
    sealed, _ = _record(tmp_path, 3)
    with pytest.raises(NoMatchingKeyError) as info:
        RecordingReader(sealed, [OTHER])
    assert f"none of the given keys ({OTHER.fingerprint}) is a recipient" in str(info.value)
    assert KEY.fingerprint in str(info.value)
    result = verify(sealed, [OTHER])
    assert result.verdict is Verdict.INVALID
    assert isinstance(result.error, NoMatchingKeyError)
    assert verify(sealed, [OTHER, KEY]).verdict is Verdict.COMPLETE


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.crec"
    empty.write_bytes(b"")
    with pytest.raises(TruncatedError, match=r"^header field magic: file is empty"):
        RecordingReader(empty, [KEY])
    with pytest.raises(TruncatedError, match="file is empty"):
        read_header(empty)
    assert verify(empty, [KEY]).verdict is Verdict.INVALID
    part = tmp_path / "empty.crec.part"
    part.write_bytes(b"")
    assert verify(part, [KEY]).verdict is Verdict.TRUNCATED


def test_not_a_recording(tmp_path: Path) -> None:
    wav = tmp_path / "call.wav"
    wav.write_bytes(b"RIFF" + bytes(100))
    with pytest.raises(FormatError, match="not a callrec recording") as info:
        read_header(wav)
    assert info.value.field == "magic"
    missing = tmp_path / "missing.crec"
    result = verify(missing, [KEY])
    assert result.verdict is Verdict.INVALID
    assert result.error is not None
    assert "No such file" in result.error.message


def test_header_only_file(tmp_path: Path) -> None:
    sealed, _ = _record(tmp_path, 3)
    hsize = read_header(sealed).header_size
    os.truncate(sealed, hsize)
    frames, reader = _read(sealed)
    assert frames == []
    assert reader.verdict is Verdict.INVALID
    assert reader.error is not None
    assert str(reader.error) == "segment 0: stream header missing (file ends after the header)"
    part = sealed.rename(tmp_path / "x.crec.part")
    assert verify(part, [KEY]).verdict is Verdict.TRUNCATED


def test_bad_stream_header_byte(tmp_path: Path) -> None:
    sealed, _ = _record(tmp_path, 3)
    data = bytearray(sealed.read_bytes())
    data[read_header(sealed).header_size] = 0x20
    sealed.write_bytes(bytes(data))
    _frames, reader = _read(sealed)
    assert reader.verdict is Verdict.INVALID
    assert reader.error is not None
    assert reader.error.field == "stream_header"


def test_data_appended_after_final_segment(tmp_path: Path) -> None:
    sealed, _ = _record(tmp_path, 30)
    with sealed.open("ab") as f:
        f.write(b"\x00" * 5000)
    _frames, reader = _read(sealed)
    assert reader.verdict is Verdict.INVALID
    assert reader.error is not None
    assert reader.error.segment == 1  # the real final segment, read together with the junk


def test_part_with_a_valid_final_segment_is_complete(tmp_path: Path) -> None:
    # A crash between the final segment and the rename leaves whole content.
    sealed, frames = _record(tmp_path, 40)
    part = sealed.rename(tmp_path / "crashed-at-rename.crec.part")
    got, reader = _read(part)
    assert (got, reader.verdict, reader.error) == (frames, Verdict.COMPLETE, None)
