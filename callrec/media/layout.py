"""How a recording's channels are laid out: both voices mixed, or each apart.

``[recording] channels`` (per dialled number too) chooses for each call:

- ``mixed``: one channel, a snoop of the caller with spy both (what the
  caller says and hears, summed by Asterisk).
- ``stereo``: two channels in one file, interleaved sample by sample:
  channel 1 (left) is what the caller says (a snoop with spy in), channel 2
  (right) what the caller hears (spy out: the other party, and any prompt
  played to the caller while recording). docs/FORMAT.md, "Channel layout".

A leaf module (it imports only the codec table), so the config, the tap, the
recorder and the CLI read the one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import IntEnum, StrEnum
from typing import Literal, get_args

from callrec.media.codecs import Codec

ChannelMode = Literal["mixed", "stereo"]
MIXED: ChannelMode = "mixed"
STEREO: ChannelMode = "stereo"
CHANNEL_MODES: tuple[ChannelMode, ...] = get_args(ChannelMode)

# The snoop direction of a mixed recording: both ways, summed by Asterisk.
MIXED_SPY = "both"
# How inspect and decrypt name the two layouts a recorder writes.
MIXED_LAYOUT = "mono-mixed"
STEREO_LAYOUT = "stereo caller-left callee-right"


class Side(IntEnum):
    """A stereo recording's channels, by index in each interleaved sample frame."""

    CALLER = 0  # left: what the caller says
    CALLEE = 1  # right: what the caller hears

    @property
    def spy(self) -> str:
        """The snoop direction (ARI ``spy``) that hears this side on the caller's channel."""
        return "in" if self is Side.CALLER else "out"


def channel_count(mode: ChannelMode) -> int:
    """Channels in the header of a recording made in ``mode``."""
    return len(Side) if mode == STEREO else 1


def mode_for(
    default: ChannelMode, numbers: Mapping[str, ChannelMode], dialled: str
) -> ChannelMode:
    """The mode of a call to ``dialled``: its own entry, else the default."""
    return numbers.get(dialled, default)


def describe(codec: str, channels: int) -> str:
    """The layout a header implies, as ``inspect`` and ``decrypt`` name it.

    Only the recorder writes the RTP codecs (``ulaw``, ``alaw``, ``slin16``),
    so their channel count says the layout; ``seal`` stores a sound file's
    channels as they were (``pcm16le``), whatever they held.
    """
    if codec == Codec.PCM16:
        return "mono" if channels == 1 else f"{channels} channels as sealed"
    if channels == 1:
        return MIXED_LAYOUT
    if channels == len(Side):
        return STEREO_LAYOUT
    return f"{channels} channels"


class ChannelPick(StrEnum):
    """What ``decrypt --channel`` writes: one side of a stereo recording, or the mix."""

    CALLER = "caller"  # left: what the caller said
    CALLEE = "callee"  # right: what the caller heard
    MIX = "mix"  # every channel summed, as a mixed recording holds both sides

    @property
    def side(self) -> Side | None:
        """The stereo channel this picks (None: all of them, mixed)."""
        return None if self is ChannelPick.MIX else Side[self.name]

    def problem(self, codec: str, channels: int) -> str | None:
        """Why a recording of this header has no such channel, or None."""
        layout = describe(codec, channels)
        if self.side is None or layout == STEREO_LAYOUT:
            return None
        return (
            f"--channel {self} needs a stereo recording (caller left, callee right); "
            f"this one is {layout}: use --channel mix, or no --channel"
        )
