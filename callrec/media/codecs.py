"""The one table of audio codec facts; every other module reads it from here.

Two layers, as aiortc keeps them (one table per protocol fact):

- :class:`Codec` names how audio bytes are encoded inside a recording, and
  :data:`CODECS` holds each one's facts: its id byte in the ``.crec`` header
  (docs/FORMAT.md), bytes per sample, static RTP payload type (RFC 3551) and
  the libsndfile subtype of the same samples.
- :class:`MediaFormat` is an Asterisk format name as a channel sends it: the
  codec of its payload and the sample rate. :data:`MEDIA_FORMATS` are those
  ExternalMedia can send as RTP (``recording.format``),
  :data:`AUDIOSOCKET_FORMATS` those of an AudioSocket channel and
  :data:`RAW_FORMATS` the headerless files Asterisk reads and writes.

A leaf module (it imports only the error hierarchy), so the audio helpers,
the crypto format, the recorder, the tap, the config and the simulator can
all read it without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Literal, get_args

from callrec.errors import MediaError


class Codec(StrEnum):
    """How audio payload bytes are encoded (the ``codec`` of a ``.crec`` header)."""

    ULAW = "ulaw"  # G.711 mu-law, one byte per sample
    ALAW = "alaw"  # G.711 A-law, one byte per sample
    SLIN16 = "slin16"  # 16-bit signed big-endian, as Asterisk sends it in RTP
    PCM16 = "pcm16le"  # 16-bit signed little-endian, interleaved channels

    @property
    def spec(self) -> CodecSpec:
        """This codec's row of :data:`CODECS`."""
        return CODECS[self]

    @property
    def sample_width(self) -> int:
        """Bytes per sample of one channel."""
        return CODECS[self].sample_width


@dataclass(frozen=True, slots=True)
class CodecSpec:
    """The facts of one codec.

    ``rtp_payload_type`` is the static type of RFC 3551, or None where the
    type is dynamic (the recorder then accepts whatever type the stream
    carries). ``soundfile_subtype`` names the same samples for libsndfile.
    ``silence`` is one sample of the quietest level (G.711's codes for zero:
    what a stereo recording holds where one side had no audio).
    """

    codec: Codec
    header_id: int
    sample_width: int
    rtp_payload_type: int | None
    soundfile_subtype: str
    silence: bytes


CODECS: dict[Codec, CodecSpec] = {
    spec.codec: spec
    for spec in (
        # codec         header id, bytes/sample, RTP type, libsndfile subtype, silence
        CodecSpec(Codec.ULAW, 1, 1, 0, "ULAW", b"\xff"),
        CodecSpec(Codec.ALAW, 2, 1, 8, "ALAW", b"\xd5"),
        CodecSpec(Codec.SLIN16, 3, 2, None, "PCM_16", b"\x00\x00"),
        CodecSpec(Codec.PCM16, 4, 2, None, "PCM_16", b"\x00\x00"),
    )
}
CODECS_BY_HEADER_ID: dict[int, Codec] = {spec.header_id: c for c, spec in CODECS.items()}

# What decrypted audio is written as (WAV or FLAC): every decoded sample exactly.
PCM16_SUBTYPE = "PCM_16"
# libsndfile subtypes whose samples become int16 without rounding.
EXACT_SUBTYPES = frozenset({"PCM_16", "PCM_S8", "PCM_U8", "ULAW", "ALAW"})


def codec_of(name: str) -> Codec:
    """The codec named ``name`` (``"ulaw"``, ...); MediaError for any other name."""
    try:
        return Codec(name)
    except ValueError:
        raise MediaError(f"unknown codec {name!r}") from None


def bytes_per_sample(codec: str) -> int:
    """Bytes one sample of one channel takes in ``codec``; MediaError if unknown."""
    return codec_of(codec).sample_width


@dataclass(frozen=True, slots=True)
class MediaFormat:
    """An Asterisk format name as a channel sends it: payload codec and rate."""

    name: str
    codec: Codec
    sample_rate: int


@dataclass(frozen=True, slots=True)
class RtpFormat(MediaFormat):
    """A format sent as RTP, with the payload type Asterisk puts in its header."""

    payload_type: int


# The dynamic payload type Asterisk 22 gave slin16 on ExternalMedia (trace 08).
ASTERISK_SLIN16_PAYLOAD_TYPE = 118

# The formats ``recording.format`` accepts: what ExternalMedia sends as RTP
# (G.711 with its static RFC 3551 type, as in CODECS).
MediaFormatName = Literal["ulaw", "alaw", "slin16"]
MEDIA_FORMATS: dict[str, RtpFormat] = {
    fmt.name: fmt
    for fmt in (
        RtpFormat("ulaw", Codec.ULAW, 8000, payload_type=0),
        RtpFormat("alaw", Codec.ALAW, 8000, payload_type=8),
        RtpFormat("slin16", Codec.SLIN16, 16000, payload_type=ASTERISK_SLIN16_PAYLOAD_TYPE),
    )
}
# One list of names, spelled twice (a Literal for the config's type checking).
assert tuple(MEDIA_FORMATS) == get_args(MediaFormatName)
assert all(
    CODECS[f.codec].rtp_payload_type in (None, f.payload_type) for f in MEDIA_FORMATS.values()
)

# AudioSocket (TCP) carries signed linear little-endian audio, never RTP.
AUDIOSOCKET_FORMATS: dict[str, MediaFormat] = {
    fmt.name: fmt
    for fmt in (
        MediaFormat("slin", Codec.PCM16, 8000),
        MediaFormat("slin16", Codec.PCM16, 16000),
    )
}

# Raw headerless files by extension, as Asterisk names them (main/formats:
# format_pcm.c, format_sln.c). ``sln`` files are host-endian: little-endian here.
RAW_FORMATS: dict[str, MediaFormat] = {
    f".{name}": MediaFormat(name, codec, rate)
    for name, codec, rate in (
        ("ulaw", Codec.ULAW, 8000),
        ("ul", Codec.ULAW, 8000),
        ("mu", Codec.ULAW, 8000),
        ("ulw", Codec.ULAW, 8000),
        ("alaw", Codec.ALAW, 8000),
        ("al", Codec.ALAW, 8000),
        ("alw", Codec.ALAW, 8000),
        ("sln", Codec.PCM16, 8000),
        ("raw", Codec.PCM16, 8000),
        ("sln12", Codec.PCM16, 12000),
        ("sln16", Codec.PCM16, 16000),
        ("sln24", Codec.PCM16, 24000),
        ("sln32", Codec.PCM16, 32000),
        ("sln44", Codec.PCM16, 44100),
        ("sln48", Codec.PCM16, 48000),
        ("sln96", Codec.PCM16, 96000),
        ("sln192", Codec.PCM16, 192000),
    )
}
