"""The codec table: what recordings store and what each recording format records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callrec.audio import decode_payload, encode_payload
from callrec.crypto.keys import PrivateKey
from callrec.errors import MediaError
from callrec.media.codecs import MEDIA_FORMATS, Codec, bytes_per_sample
from callrec.recording import AudioFrame, RecordingReader, RecordingWriter, Verdict, read_header

KEY = PrivateKey.generate()
CODEC_OFFSET = 25  # docs/FORMAT.md: the codec byte of the container header


@pytest.mark.parametrize(
    ("codec", "header_byte"),
    [(Codec.ULAW, 1), (Codec.ALAW, 2), (Codec.SLIN16, 3), (Codec.PCM16, 4)],
)
def test_each_codec_keeps_its_documented_header_byte(
    tmp_path: Path, codec: Codec, header_byte: int
) -> None:
    # Recordings already sealed must keep reading as the codec they were written in.
    writer = RecordingWriter.create(tmp_path, [KEY.public_key()], codec=codec, sample_rate=8000)
    info = writer.close()
    assert info.path.read_bytes()[CODEC_OFFSET] == header_byte
    assert read_header(info.path).codec is codec


@pytest.mark.parametrize("name", sorted(MEDIA_FORMATS))
def test_every_recording_format_round_trips_a_second_of_audio(tmp_path: Path, name: str) -> None:
    fmt = MEDIA_FORMATS[name]
    t = np.arange(fmt.sample_rate) / fmt.sample_rate
    samples = (np.sin(2 * np.pi * 440 * t) * 8000).astype(np.int16)
    payload = encode_payload(fmt.codec, samples)
    assert len(payload) == fmt.sample_rate * bytes_per_sample(fmt.codec)

    writer = RecordingWriter.create(
        tmp_path, [KEY.public_key()], codec=fmt.codec, sample_rate=fmt.sample_rate
    )
    writer.write_audio(payload)
    info = writer.close()
    assert info.audio_seconds == pytest.approx(1.0)
    with RecordingReader(info.path, [KEY]) as reader:
        frames = list(reader.frames())
    assert reader.verdict is Verdict.COMPLETE
    assert frames == [AudioFrame(payload)]
    decoded = decode_payload(fmt.codec, payload, 1)
    # G.711 is lossy; 16-bit linear is exact.
    tolerance = 0 if fmt.codec.sample_width == 2 else 300
    assert np.abs(decoded.astype(np.int32) - samples).max() <= tolerance


def test_an_unknown_codec_is_named_in_the_error() -> None:
    with pytest.raises(MediaError, match="unknown codec 'gsm'"):
        bytes_per_sample("gsm")
