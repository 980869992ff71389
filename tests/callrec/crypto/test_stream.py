"""The Tink segment layer: known answers, and interop with Google's own ``tink`` package."""

from __future__ import annotations

import hmac
import io
import json
import os
from pathlib import Path

import pytest
import tink
from tink import secret_key_access, streaming_aead

from callrec.crypto import format as fmt
from callrec.crypto import stream
from callrec.crypto.keys import PrivateKey
from callrec.media.codecs import Codec
from callrec.recording import (
    AudioFrame,
    MetadataFrame,
    RecordingReader,
    RecordingWriter,
    Verdict,
    export_tink,
)

streaming_aead.register()

DATA_KEY = bytes(range(0x40, 0x60))
SALT = bytes(range(0x80, 0xA0))
NONCE_PREFIX = bytes(range(0xA0, 0xA7))
KEY = PrivateKey.generate()
PQ = PrivateKey.generate(pq=True)


def test_segment_sizes() -> None:
    assert (stream.STREAM_HEADER_SIZE, stream.CIPHERTEXT_SEGMENT_SIZE) == (0x28, 4096)
    assert (stream.FIRST_PLAINTEXT_SEGMENT_SIZE, stream.PLAINTEXT_SEGMENT_SIZE) == (4040, 4080)
    assert (stream.ciphertext_size(0), stream.ciphertext_size(7)) == (4056, 4096)


def test_nonce_construction() -> None:
    assert stream.segment_nonce(NONCE_PREFIX, 0, False) == bytes.fromhex(
        "a0a1a2a3a4a5a60000000000"
    )
    assert stream.segment_nonce(NONCE_PREFIX, 1, True) == bytes.fromhex("a0a1a2a3a4a5a60000000101")
    assert stream.segment_nonce(NONCE_PREFIX, 0x01020304, False) == bytes.fromhex(
        "a0a1a2a3a4a5a60102030400"
    )


def test_segment_key_derivation() -> None:
    key = stream.derive_segment_key(DATA_KEY, SALT, b"")
    assert key == bytes.fromhex("614953b3c03b526cfbcab398ad314f0e8cb3a0b9f9118bc7f5dbc179c10b214f")
    # RFC 5869 by hand: PRK = HMAC(salt, ikm); OKM = HMAC(PRK, info || 0x01) for 32 bytes.
    prk = hmac.digest(SALT, DATA_KEY, "sha256")
    assert key == hmac.digest(prk, b"\x01", "sha256")
    ad = b"associated data"
    assert stream.derive_segment_key(DATA_KEY, SALT, ad) == hmac.digest(
        prk, ad + b"\x01", "sha256"
    )


def test_stream_header() -> None:
    assert stream.stream_header(SALT, NONCE_PREFIX) == bytes.fromhex(
        "28808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6"
    )


def test_tink_key_proto() -> None:
    assert stream.tink_key_proto(DATA_KEY) == bytes.fromhex("1207088020102018031a20") + DATA_KEY


def _tink(keyset_json: str) -> streaming_aead.StreamingAead:
    handle = tink.json_proto_keyset_format.parse(keyset_json, secret_key_access.TOKEN)
    return handle.primitive(streaming_aead.StreamingAead)


def _tink_decrypt(keyset_json: str, ciphertext: bytes, ad: bytes) -> bytes:
    with _tink(keyset_json).new_decrypting_stream(io.BytesIO(ciphertext), ad) as source:
        data: bytes = source.read()
    return data


class _Keep(io.BytesIO):
    """Tink closes its sink; keep what was written."""

    kept = b""

    def close(self) -> None:
        self.kept = self.getvalue()
        super().close()


def _tink_encrypt(keyset_json: str, plaintext: bytes, ad: bytes) -> bytes:
    sink = _Keep()
    with _tink(keyset_json).new_encrypting_stream(sink, ad) as out:
        out.write(plaintext)
    return sink.kept


@pytest.mark.parametrize("size", [0, 1, 4039, 4040, 4041, 8120, 20000])
def test_tink_decrypts_our_stream(tmp_path: Path, size: int) -> None:
    # Sizes on a segment boundary make our writer emit a full segment and then
    # an empty final one: Tink accepts that.
    payload = os.urandom(size)
    recipients = [KEY.public_key(), PQ.public_key()]  # a long header as associated data
    writer = RecordingWriter.create(tmp_path, recipients, codec="ulaw", sample_rate=8000)
    writer.write(payload)
    path = writer.close().path
    export = export_tink(path, [PQ])
    assert export == export_tink(path, [KEY])
    data = path.read_bytes()
    assert export.associated_data == data[: export.stream_offset]
    assert export.stream_offset + export.stream_length == len(data)
    stream_bytes = data[export.stream_offset :]
    assert _tink_decrypt(export.keyset_json, stream_bytes, export.associated_data) == payload
    keyset = json.loads(export.keyset_json)
    assert keyset["key"][0]["keyData"]["typeUrl"] == stream.TINK_TYPE_URL


@pytest.mark.parametrize("size", [0, 4040, 4081, 30000])
def test_we_read_a_stream_tink_wrote(tmp_path: Path, size: int) -> None:
    data_key = os.urandom(32)
    header = fmt.build_header(
        os.urandom(16), Codec.ULAW, 8000, 1, 0, [KEY.public_key()], data_key
    ).raw
    meta = b"\x05\x00\x00\x00\x02{}"
    audio = os.urandom(max(size - len(meta) - 5, 0))
    plaintext = meta + b"\x01" + len(audio).to_bytes(4, "big") + audio
    keyset = stream.tink_keyset_json(data_key, 42)
    path = tmp_path / "tink.crec"
    path.write_bytes(header + _tink_encrypt(keyset, plaintext, header))
    with RecordingReader(path, [KEY]) as reader:
        frames = list(reader.frames())
    assert frames == [MetadataFrame({}), AudioFrame(audio)]
    assert reader.verdict is Verdict.COMPLETE


def test_tink_rejects_an_edited_header_as_associated_data(tmp_path: Path) -> None:
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec="ulaw", sample_rate=8000)
    writer.write(b"secret audio")
    path = writer.close().path
    export = export_tink(path, [KEY])
    ad = bytearray(export.associated_data)
    ad[25] ^= 0x03
    with pytest.raises(tink.TinkError):
        _tink_decrypt(export.keyset_json, path.read_bytes()[export.stream_offset :], bytes(ad))
