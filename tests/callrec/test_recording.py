"""Writer and reader of sealed recordings: round trips, life cycle, spool failures."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callrec.clock import ManualClock
from callrec.crypto.keys import PrivateKey
from callrec.crypto.stream import FIRST_CIPHERTEXT_SEGMENT_SIZE, FIRST_PLAINTEXT_SEGMENT_SIZE
from callrec.errors import RecordingUnavailable, SpoolError, WriterClosedError
from callrec.recording import (
    AudioFrame,
    Codec,
    Frame,
    GapFrame,
    MetadataFrame,
    PauseFrame,
    RecordingReader,
    RecordingWriter,
    ResumeFrame,
    Verdict,
    read_header,
    verify,
)
from callrec.spool import Spool

KEY = PrivateKey.generate()
OTHER = PrivateKey.generate()


def _read_all(path: Path, key: PrivateKey = KEY) -> tuple[list[Frame], RecordingReader]:
    with RecordingReader(path, [key]) as reader:
        frames = list(reader.frames())
    return frames, reader


def _write(writer: RecordingWriter, frame: Frame) -> None:
    if isinstance(frame, AudioFrame):
        writer.write_audio(frame.payload)
    elif isinstance(frame, GapFrame):
        writer.write_gap(frame.samples)
    elif isinstance(frame, PauseFrame):
        writer.write_pause(frame.at, frame.source)
    elif isinstance(frame, ResumeFrame):
        writer.write_resume(frame.at, frame.source)
    else:
        writer.write_metadata(frame.record)


_sources = st.none() | st.sampled_from(["agent-code", "agi", "control", "auto-resume"])
_frames = st.one_of(
    st.builds(AudioFrame, st.sampled_from([b"", b"\x7f" * 160]) | st.binary(max_size=5000)),
    # 30 gaps of 2^27 samples stay under a week at 8 kHz (docs/FORMAT.md, "Limits").
    st.builds(GapFrame, st.integers(0, 1 << 27)),
    # A pause renders as silence up to its resume: within an hour, 30 stay under a week.
    st.builds(PauseFrame, st.floats(2e9, 2e9 + 3600), _sources),
    st.builds(ResumeFrame, st.floats(2e9, 2e9 + 3600), _sources),
    st.builds(
        MetadataFrame,
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=20), max_size=4),
    ),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(_frames, max_size=30))
def test_frames_round_trip(frames: list[Frame]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        writer = RecordingWriter.create(
            Path(tmp), [KEY.public_key()], codec="ulaw", sample_rate=8000
        )
        for frame in frames:
            _write(writer, frame)
        info = writer.close()
        got, reader = _read_all(info.path)
    expected = [f for f in frames if not (isinstance(f, AudioFrame) and not f.payload)]
    assert got == expected
    assert reader.verdict is Verdict.COMPLETE
    assert reader.segments_verified == info.segments
    assert reader.audio_seconds == pytest.approx(info.audio_seconds)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from([0, 1, 160, 4039, 4040, 4080]) | st.integers(0, 20000), max_size=20)
)
def test_raw_writes_of_any_size_round_trip(sizes: list[int]) -> None:
    data = [os.urandom(n) for n in sizes]
    with tempfile.TemporaryDirectory() as tmp:
        writer = RecordingWriter.create(
            Path(tmp), [KEY.public_key()], codec="ulaw", sample_rate=8000
        )
        assert [writer.write(chunk) for chunk in data] == sizes
        info = writer.close()
        with RecordingReader(info.path, [KEY]) as reader:
            plain = b"".join(p for _i, p in reader.chunks())
    assert plain == b"".join(data)
    assert reader.verdict is Verdict.COMPLETE


def test_segment_written_the_moment_it_fills(tmp_path: Path) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    start = writer.path.stat().st_size
    assert start == writer.header.header_size + 40  # header and stream header, at once
    assert stat.S_IMODE(writer.path.stat().st_mode) == 0o600
    writer.write(b"x" * (FIRST_PLAINTEXT_SEGMENT_SIZE - 1))
    writer.flush()
    assert writer.path.stat().st_size == start
    writer.write(b"x")
    assert writer.path.stat().st_size == start + FIRST_CIPHERTEXT_SEGMENT_SIZE
    writer.close()


@pytest.mark.parametrize("fill", [4036, 4037, 4039, 4040 + 4076, 4040 + 4079])
def test_frame_header_straddling_a_segment_boundary(tmp_path: Path, fill: int) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    writer.write_metadata({"pad": "x" * (fill - 5 - len('{"pad":""}'))})
    for size in (10, 9000, 160):
        writer.write_audio(bytes([size % 251]) * size)
    frames, reader = _read_all(writer.close().path)
    assert [len(f.payload) for f in frames if isinstance(f, AudioFrame)] == [10, 9000, 160]
    assert reader.verdict is Verdict.COMPLETE


def test_zero_length_recording_is_complete(tmp_path: Path) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="alaw", sample_rate=8000)
    info = writer.close()
    header = read_header(info.path)
    assert info.size == header.header_size + 40 + 16 == info.path.stat().st_size
    assert info.segments == 1
    result = verify(info.path, [KEY])
    assert (result.verdict, result.segments, result.audio_seconds) == (Verdict.COMPLETE, 1, 0.0)


def test_seal_info_and_header(tmp_path: Path) -> None:
    spool = tmp_path / "incoming"
    writer = RecordingWriter.create(
        spool,
        [KEY.public_key(), OTHER.public_key(), KEY.public_key()],
        codec=Codec.PCM16,
        sample_rate=16000,
        channels=2,
        recording_id="00112233445566778899aabbccddeeff",
        created_at=1795910400.25,
    )
    assert writer.path == spool / "00112233445566778899aabbccddeeff.crec.part"
    writer.write_audio(b"\x00" * 64000)  # one second of 16 kHz stereo
    writer.write_gap(8000)
    assert writer.audio_seconds == 1.5
    final = tmp_path / "2026" / "11" / "29" / "call.crec"
    info = writer.close(final)
    assert (info.path, writer.path, writer.closed) == (final, final, True)
    assert not (spool / "00112233445566778899aabbccddeeff.crec.part").exists()
    assert stat.S_IMODE(final.stat().st_mode) == 0o600
    assert stat.S_IMODE(spool.stat().st_mode) == 0o700
    assert stat.S_IMODE(final.parent.stat().st_mode) == 0o700
    assert info.audio_seconds == 1.5
    header = read_header(final)
    assert header.recording_id == info.recording_id == "00112233445566778899aabbccddeeff"
    assert (header.codec, header.sample_rate, header.channels) == (Codec.PCM16, 16000, 2)
    assert header.created_at == 1795910400.25
    assert [r.key_id for r in header.recipients] == [KEY.fingerprint, OTHER.fingerprint]
    for key in (KEY, OTHER):
        assert verify(final, [key]).verdict is Verdict.COMPLETE


def test_post_quantum_recipient(tmp_path: Path) -> None:
    pq = PrivateKey.generate(pq=True)
    writer = RecordingWriter.create(
        tmp_path, [pq.public_key(), KEY.public_key()], codec="slin16", sample_rate=16000
    )
    writer.write_metadata({"consent": "implied"})
    writer.write_audio(b"\x00\x01" * 16000)
    info = writer.close()
    header = read_header(info.path)
    assert [r.kem for r in header.recipients] == ["mlkem768-x25519", "x25519"]
    assert header.header_size == 72 + (19 + 1168) + (19 + 80) + 68
    for key in (pq, KEY):
        result = verify(info.path, [key])
        assert (result.verdict, result.audio_seconds) == (Verdict.COMPLETE, 1.0)


def test_last_tag_hash_matches_file(tmp_path: Path) -> None:
    import hashlib

    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    writer.write(b"a" * 9000)
    info = writer.close()
    assert info.last_tag_sha256 == hashlib.sha256(info.path.read_bytes()[-16:]).hexdigest()
    assert info.segments == 3


def test_writer_refuses_after_close(tmp_path: Path) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    writer.close()
    for call in (
        lambda: writer.write(b"x"),
        lambda: writer.write_audio(b"x"),
        lambda: writer.write_gap(1),
        lambda: writer.write_metadata({}),
        writer.flush,
    ):
        with pytest.raises(WriterClosedError, match="is closed"):
            call()


def test_closing_twice_is_harmless(tmp_path: Path) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    writer.write_audio(b"\x55" * 100)
    first = writer.close()
    assert writer.closed
    assert writer.close() == first
    assert verify(first.path, [KEY]).verdict is Verdict.COMPLETE
    assert [p.name for p in tmp_path.iterdir()] == [first.path.name]


def test_closing_an_aborted_writer_says_it_is_closed(tmp_path: Path) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    writer.abort()
    writer.abort()
    assert writer.closed
    with pytest.raises(WriterClosedError, match="is closed"):
        writer.close()
    assert writer.path.name.endswith(".crec.part")


def test_writer_refuses_in_forked_child(tmp_path: Path) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    writer.write_audio(b"parent" * 10)
    pid = os.fork()
    if pid == 0:  # the child must not touch the parent's stream
        code = 1
        try:
            writer.write_audio(b"child")
        except WriterClosedError as exc:
            code = 0 if "forked child" in str(exc) else 2
        try:
            writer.close()
            code = 3
        except WriterClosedError:
            pass
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    writer.write_audio(b"more")
    frames, reader = _read_all(writer.close().path)
    assert frames == [AudioFrame(b"parent" * 10), AudioFrame(b"more")]
    assert reader.verdict is Verdict.COMPLETE


def test_no_recipient_is_recording_unavailable(tmp_path: Path) -> None:
    with pytest.raises(RecordingUnavailable, match="no recipient public key"):
        RecordingWriter.create(tmp_path, [], codec="ulaw", sample_rate=8000)
    pub = [KEY.public_key()]
    with pytest.raises(RecordingUnavailable, match="unknown codec 'gsm'"):
        RecordingWriter.create(tmp_path, pub, codec="gsm", sample_rate=8000)
    with pytest.raises(RecordingUnavailable, match="sample rate 0 out of range"):
        RecordingWriter.create(tmp_path, pub, codec="ulaw", sample_rate=0)
    with pytest.raises(RecordingUnavailable, match="channel count 256 out of range"):
        RecordingWriter.create(tmp_path, pub, codec="ulaw", sample_rate=8000, channels=256)
    with pytest.raises(RecordingUnavailable, match=r"created_at -1\.0 is out of range"):
        RecordingWriter.create(tmp_path, pub, codec="ulaw", sample_rate=8000, created_at=-1.0)
    with pytest.raises(RecordingUnavailable, match="recording id 'abc' is not 32 hex digits"):
        RecordingWriter.create(tmp_path, pub, codec="ulaw", sample_rate=8000, recording_id="abc")
    assert list(tmp_path.iterdir()) == []


def test_spool_is_a_regular_file(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.write_text("not a folder")
    with pytest.raises(SpoolError, match="exists and is not a folder") as info:
        RecordingWriter.create(spool, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    assert info.value.path == str(spool)
    with pytest.raises(SpoolError, match="a parent is a file, not a folder"):
        RecordingWriter.create(spool / "sub", [KEY.public_key()], codec="ulaw", sample_rate=8000)


def test_spool_under_dev_full_cannot_be_created() -> None:
    with pytest.raises(SpoolError, match="a parent is a file, not a folder"):
        RecordingWriter.create(
            Path("/dev/full/spool"), [KEY.public_key()], codec="ulaw", sample_rate=8000
        )


def _swap_for_dev_full(path: Path) -> None:
    """Point the writer's open descriptor at /dev/full: the next write hits ENOSPC."""
    for entry in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(entry)
        except OSError:
            continue
        if target == str(path):
            full = os.open("/dev/full", os.O_WRONLY)
            os.dup2(full, int(entry.name))
            os.close(full)
            return
    raise AssertionError(f"no descriptor open on {path}")


def test_disk_full_mid_recording(tmp_path: Path) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    writer.write_audio(b"\x55" * 5000)  # segment 0 reaches the disk
    _swap_for_dev_full(writer.path)
    with pytest.raises(SpoolError, match="disk full"):
        writer.write_audio(b"\x55" * 5000)
    with pytest.raises(SpoolError, match="disk full"):
        writer.write_audio(b"\x55")
    with pytest.raises(SpoolError):
        writer.close()
    assert writer.path.name.endswith(".crec.part")
    result = verify(writer.path, [KEY])
    assert (result.verdict, result.segments) == (Verdict.TRUNCATED, 1)


def test_existing_final_file_is_not_replaced(tmp_path: Path) -> None:
    final = tmp_path / "out.crec"
    final.write_bytes(b"precious")
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    with pytest.raises(SpoolError, match="already exists"):
        writer.close(final)
    assert final.read_bytes() == b"precious"
    assert verify(writer.path, [KEY]).verdict is Verdict.COMPLETE


def test_sealing_into_a_dated_folder_keeps_every_new_parent_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool")
    spool.ensure()
    writer = RecordingWriter.create(
        spool.incoming, [KEY.public_key()], codec="ulaw", sample_rate=8000
    )
    final = spool.final_path(writer.recording_id, 1_700_000_000.0)
    writer.close(final)
    assert verify(final, [KEY]).verdict is Verdict.COMPLETE
    for folder in (final.parent, final.parent.parent, final.parent.parent.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_fsync_interval_uses_the_clock(tmp_path: Path) -> None:
    # What a crash leaves is the same either way; this checks that a manual
    # clock drives the policy without errors and everything still seals.
    clock = ManualClock()
    writer = RecordingWriter.create(
        tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000, clock=clock
    )
    assert writer.header.created_at == clock.wall()
    for _ in range(10):
        writer.write_audio(b"\x01" * 4000)
        clock.advance(0.6)
    assert verify(writer.close().path, [KEY]).verdict is Verdict.COMPLETE


def test_context_manager_seals_or_leaves_part(tmp_path: Path) -> None:
    with RecordingWriter.create(
        tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000
    ) as writer:
        writer.write_audio(b"ok")
    assert writer.path.suffix == ".crec"
    crashed = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    with pytest.raises(RuntimeError, match="boom"):
        _crash_inside(crashed)
    result = verify(crashed.path, [KEY])
    assert crashed.path.name.endswith(".crec.part")
    assert (result.verdict, result.segments) == (Verdict.TRUNCATED, 1)


def _crash_inside(writer: RecordingWriter) -> None:
    with writer:
        writer.write_audio(b"x" * 5000)
        raise RuntimeError("boom")
