"""Known-answer vectors for the container header and a whole pinned ``.crec`` (docs/FORMAT.md)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from callrec.crypto import format as fmt
from callrec.crypto.keys import KEM_X25519, PrivateKey
from callrec.crypto.stream import SegmentCipher, derive_segment_key
from callrec.errors import FormatError, TruncatedError
from callrec.media.codecs import Codec
from callrec.recording import AudioFrame, GapFrame, MetadataFrame, RecordingReader, Verdict

# The test key of docs/FORMAT.md: X25519 secret 00 01 .. 1f.
KEY = PrivateKey(KEM_X25519, bytes(range(32)))
DATA_KEY = bytes(range(0x40, 0x60))
RECORDING_ID = bytes.fromhex("00112233445566778899aabbccddeeff")
SALT = bytes(range(0x80, 0xA0))
NONCE_PREFIX = bytes(range(0xA0, 0xA7))

STANZA = bytes.fromhex(
    "01"  # kem: x25519
    "5f3926f9cb8860c381dea94b3ed727de"  # key id
    "0050"  # wrapped length 80
    "464f093ecef1b243f8cd0e661330c8acf7ed85064f2d24800830575d4759970f"  # HPKE enc
    "86e6fdf5b5886c848ac8b23128b96aa63bac4cb5c0353122b407c0a8ace18089"  # HPKE ct ...
    "80960e8d46d26fe3026e9c93d0c9ca97"  # ... and tag
)
HEADER_BODY = (
    bytes.fromhex(
        "89435245430d0a1a"  # magic
        "01"  # version
        "00112233445566778899aabbccddeeff"  # recording id
        "01"  # codec ulaw
        "00001f40"  # sample rate 8000
        "01"  # channels
        "000001a22499f800"  # created at 1795910400000 ms
        "01"  # one recipient
    )
    + STANZA
)
HEADER_MAC = bytes.fromhex("80851b49d144d13b414c154cf50c3ae1fa0776d0570562d75f7c7d6555e1060f")
FIELD_TAGS = bytes.fromhex("77441d7d355e7513326f69557387718a3ebb07d77c98c7f932409bd10aa35614")
HEADER = HEADER_BODY + HEADER_MAC + FIELD_TAGS
MAC_KEY = bytes.fromhex("9e661893ecb2d1e7f9e2935d1fa6dcb392651fca362f88f606d48f903f454dde")
STREAM_HEADER = bytes.fromhex("28") + SALT + NONCE_PREFIX
PLAINTEXT = bytes.fromhex(
    "05000000157b22636f6e73656e74223a22696d706c696564227d"  # metadata {"consent":"implied"}
    "0100000004ff7f0080"  # audio ff 7f 00 80
    "020000000800000000000000a0"  # gap of 160 samples
)
SEGMENT_0 = bytes.fromhex(
    "353b62ef978d585888fa0f3d69ac246af00e211b77cc92459519bf578a14232843e662f55b6ee9256de26ae8"
    "3fd6c70d2908fad93694a987c03449436a22bf7b"
)
FILE = HEADER + STREAM_HEADER + SEGMENT_0


def test_version_1_fixed_fields_at_their_offsets() -> None:
    """Files written before signatures (version 1) still read: pinned here byte for byte."""
    assert HEADER[0:8] == fmt.MAGIC == b"\x89CREC\r\n\x1a"
    parsed = fmt.parse_header(_reader(FILE))
    h = parsed.header
    assert (h.version, h.recording_id) == (1, "00112233445566778899aabbccddeeff")
    assert (h.codec, h.sample_rate, h.channels) == ("ulaw", 8000, 1)
    assert h.created_at == 1795910400.0
    assert [(r.key_id, r.kem) for r in h.recipients] == [("l44sn6olrbqmhao6vfft5vzh3y", "x25519")]
    assert h.header_size == len(HEADER) == 203
    assert h.signer is None
    assert parsed.raw == HEADER
    assert parsed.stanzas[0].wrapped == STANZA[19:]


def test_stanza_opens_with_the_pinned_key() -> None:
    assert KEY.unwrap(STANZA[19:], fmt.WRAP_LABEL, RECORDING_ID, "recipients[0]") == DATA_KEY
    assert fmt.open_header(fmt.parse_header(_reader(FILE)), [KEY]) == DATA_KEY


def test_mac_key_mac_and_field_tags() -> None:
    assert fmt.derive_mac_key(DATA_KEY, RECORDING_ID) == MAC_KEY
    assert hmac.digest(MAC_KEY, HEADER_BODY, "sha256") == HEADER_MAC
    assert fmt.field_tags(MAC_KEY, HEADER_BODY) == FIELD_TAGS
    codec_tag = hmac.digest(MAC_KEY, b"field\x00codec\x00\x01", "sha256")[:4]
    assert FIELD_TAGS[12:16] == codec_tag


def test_build_header_writes_version_2_with_the_same_fields() -> None:
    made = fmt.build_header(
        RECORDING_ID, Codec.ULAW, 8000, 1, 1795910400000, [KEY.public_key()], DATA_KEY
    )
    built = made.raw
    # Version 2 (docs/FORMAT.md): the version-1 fields, then 32 signer bytes
    # (zero: unsigned), then the stanzas, MAC and 9 field tags. HPKE draws a
    # fresh ephemeral key, so only the wrapped bytes differ.
    assert built[:8] + built[9:39] == HEADER[:8] + HEADER[9:39]
    assert (built[8], built[39:71], built[71:91]) == (2, bytes(32), HEADER[39:59])
    assert len(built) == len(HEADER) + 32 + 4
    assert made.header.signer is None
    parsed = fmt.parse_header(_reader(built))
    assert fmt.open_header(parsed, [KEY]) == DATA_KEY
    assert parsed == made  # the writer's Header is what every reader will see


def test_pinned_segment_encrypts_and_decrypts() -> None:
    assert derive_segment_key(DATA_KEY, SALT, HEADER) == bytes.fromhex(
        "054ac4cb96fc32948e9126e72dc582c254c01d159d1a3a69135db3fdc8db1eb2"
    )
    cipher = SegmentCipher(DATA_KEY, SALT, NONCE_PREFIX, HEADER)
    assert cipher.header == STREAM_HEADER
    assert cipher.encrypt(0, PLAINTEXT, True) == SEGMENT_0
    assert cipher.decrypt(0, SEGMENT_0, True) == PLAINTEXT
    assert cipher.decrypt(0, SEGMENT_0, False) is None


def test_pinned_file_reads(tmp_path: Path) -> None:
    path = tmp_path / "kat.crec"
    path.write_bytes(FILE)
    with RecordingReader(path, [KEY]) as reader:
        frames = list(reader.frames())
    assert frames == [
        MetadataFrame({"consent": "implied"}),
        AudioFrame(bytes.fromhex("ff7f0080")),
        GapFrame(160),
    ]
    assert reader.verdict is Verdict.COMPLETE
    assert reader.audio_seconds == 164 / 8000
    assert hashlib.sha256(FILE).hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    ("offset", "value", "field", "message"),
    [
        (0, 0x88, "magic", "not a callrec recording (bad magic)"),
        (8, 3, "version", "unsupported version 3 (this callrec reads versions 1 and 2)"),
        (25, 9, "codec", "unknown codec id 9"),
        (26, 0, "sample_rate", None),
        (30, 0, "channels", "channel count is 0"),
        (39, 0, "recipients", "no recipients"),
        (40, 7, "recipients[0].kem", "unknown key type 7"),
        (58, 0x51, "recipients[0].wrapped_key", "wrapped key is 81 bytes, expected 80 for x25519"),
    ],
)
def test_parse_errors_name_the_field(
    offset: int, value: int, field: str, message: str | None
) -> None:
    bad = bytearray(FILE)
    bad[offset] = value
    if offset == 26:
        bad[26:30] = bytes(4)
        message = "sample rate is 0"
    with pytest.raises(FormatError) as info:
        fmt.parse_header(_reader(bytes(bad)))
    assert (info.value.field, info.value.message) == (field, message)


def test_every_truncation_of_the_header() -> None:
    for length in range(len(HEADER)):
        with pytest.raises(TruncatedError) as info:
            fmt.parse_header(_reader(HEADER[:length]))
        expected = (
            "file is empty, not a callrec recording"
            if length == 0
            else f"file ends inside the header (at byte {length})"
        )
        assert info.value.message == expected


def _reader(data: bytes) -> _Read:
    return _Read(data)


class _Read:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def __call__(self, size: int) -> bytes:
        out = self.data[self.pos : self.pos + size]
        self.pos += len(out)
        return out
