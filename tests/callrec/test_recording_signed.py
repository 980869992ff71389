"""Signed recordings end to end: writer, reader, crashes, forgeries, Tink export."""

from __future__ import annotations

import io
from pathlib import Path

import tink
from tink import cleartext_keyset_handle, streaming_aead

from callrec.crypto.frames import encode
from callrec.crypto.keys import PrivateKey
from callrec.crypto.signing import RECORD_SIZE, SigningKey
from callrec.errors import FormatError, TruncatedError
from callrec.recording import RecordingReader, RecordingWriter, Verdict, export_tink, verify
from callrec.recording.origin import NEVER_SEALED, Signature, origin_of
from tests.callrec.crypto.test_format import FILE as VERSION_1_FILE
from tests.callrec.crypto.test_format import KEY as VERSION_1_KEY

KEY = PrivateKey.generate()
RECORDER = SigningKey.generate()
TRUSTED = {RECORDER.public_key().key_id}


def _writer(folder: Path, signer: SigningKey | None = RECORDER) -> RecordingWriter:
    writer = RecordingWriter.create(
        folder, [KEY.public_key()], codec="ulaw", sample_rate=8000, signer=signer
    )
    writer.write_metadata({"consent": "implied"})
    writer.write_audio(bytes(range(256)) * 40)  # 10 KiB: three segments
    return writer


def test_a_signed_recording_reads_complete_and_names_its_recorder(tmp_path: Path) -> None:
    info = _writer(tmp_path).close()
    assert info.signer == RECORDER.fingerprint
    assert info.size == info.path.stat().st_size
    result = verify(info.path, [KEY])
    assert (result.verdict, result.segments) == (Verdict.COMPLETE, 3)
    assert result.origin is not None
    assert (result.origin.signature, result.origin.fingerprint) == (
        Signature.SIGNED,
        RECORDER.fingerprint,
    )
    assert result.origin.trusted(TRUSTED)
    # The record is the last 124 bytes; the audit line's last tag is just before it.
    data = info.path.read_bytes()
    assert data[-RECORD_SIZE:].startswith(b"\x89CRECSIG")
    assert data[-RECORD_SIZE + 12 : -RECORD_SIZE + 28] == data[-RECORD_SIZE - 16 : -RECORD_SIZE]


def test_a_file_forged_with_only_a_public_key_is_not_trusted(tmp_path: Path) -> None:
    # What an attacker on the PBX can do: the recipients' public key, and a key of their own.
    unsigned = _writer(tmp_path / "a", signer=None).close().path
    self_signed = _writer(tmp_path / "b", signer=SigningKey.generate()).close().path
    for path in (unsigned, self_signed):
        result = verify(path, [KEY])
        assert result.verdict is Verdict.COMPLETE  # it is a well-formed recording ...
        assert result.origin is not None
        assert not result.origin.trusted(TRUSTED)  # ... that this recorder did not make
    assert origin_of(unsigned)[1].signature is Signature.UNSIGNED
    assert origin_of(self_signed)[1].signature is Signature.SIGNED


def test_flipping_a_dense_sample_of_bytes_breaks_the_signature(tmp_path: Path) -> None:
    data = _writer(tmp_path).close().path.read_bytes()
    target = tmp_path / "flipped.crec"
    for offset in range(0, len(data), 37):  # every 37th byte, header to record
        bad = bytearray(data)
        bad[offset] ^= 0x80
        target.write_bytes(bytes(bad))
        try:
            signature = origin_of(target)[1].signature
        except FormatError:  # the header no longer parses: nothing to trust either
            continue
        assert signature is not Signature.SIGNED, offset


def test_a_crash_leaves_an_unsigned_part_that_reads_truncated(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    writer.abort()  # kill -9: no final segment, no signature
    result = verify(writer.path, [KEY])
    assert result.verdict is Verdict.TRUNCATED
    assert result.origin is not None and result.origin.signature is Signature.MISSING
    assert not result.origin.trusted(TRUSTED)


def test_a_cut_signature_record_is_a_missing_end(tmp_path: Path) -> None:
    sealed = _writer(tmp_path).close().path
    data = sealed.read_bytes()[:-RECORD_SIZE]  # the stream itself is whole
    part = tmp_path / "crashed.crec.part"
    part.write_bytes(data)
    cut = tmp_path / "cut.crec"
    cut.write_bytes(data)
    for path, verdict in ((part, Verdict.TRUNCATED), (cut, Verdict.INVALID)):
        result = verify(path, [KEY])
        assert (result.verdict, result.segments) == (verdict, 3)
        assert isinstance(result.error, TruncatedError)
        assert result.error.message == NEVER_SEALED


def test_a_crash_between_signing_and_renaming_is_complete_and_signed(tmp_path: Path) -> None:
    sealed = _writer(tmp_path).close().path
    part = sealed.with_name(sealed.name + ".part")
    sealed.rename(part)
    result = verify(part, [KEY])
    assert result.verdict is Verdict.COMPLETE
    assert result.origin is not None and result.origin.trusted(TRUSTED)


def test_a_version_1_file_still_verifies_as_unsigned(tmp_path: Path) -> None:
    old = tmp_path / "old.crec"
    old.write_bytes(VERSION_1_FILE)
    result = verify(old, [VERSION_1_KEY])
    assert result.verdict is Verdict.COMPLETE
    assert result.origin is not None and result.origin.signature is Signature.UNSIGNED


def test_the_tink_export_of_a_signed_file_leaves_the_record_out(tmp_path: Path) -> None:
    sealed = _writer(tmp_path).close().path
    export = export_tink(sealed, [KEY])
    data = sealed.read_bytes()
    assert export.stream_offset + export.stream_length == len(data) - RECORD_SIZE
    stream = data[export.stream_offset : export.stream_offset + export.stream_length]
    streaming_aead.register()
    handle = cleartext_keyset_handle.read(tink.JsonKeysetReader(export.keyset_json))
    primitive = handle.primitive(streaming_aead.StreamingAead)
    with primitive.new_decrypting_stream(io.BytesIO(stream), export.associated_data) as f:
        plaintext = f.read()
    with RecordingReader(sealed, [KEY]) as reader:
        assert plaintext == b"".join(encode(frame) for frame in reader.frames())
