"""A recording tap's media watchdog: is the RTP still arriving, on every side?

Asterisk sends 50 packets/s while a snoop is in the tap's bridge, silence
included (traces 01, 05), so a stream without a packet for ``media_timeout``
seconds is gone. A mixed tap has one stream; a stereo tap two (what the
caller says, what the caller hears), watched apart: one that stops while
the other still sends is that side's loss, not the whole recording's, and
its channel holds silence from there (:mod:`callrec.media.stereo`) while the
other keeps its audio. The recording must then say so, or a reviewer later
finds half a conversation and no reason why.

One timer per tap, never work per packet (docs/DESIGN.md: the per-packet
path decides whether callrec scales): each check reads the streams' packet
counters and the clock once. It runs on real time (RTP arrives in real time),
not on the tap's clock; idle time is known to :data:`MEDIA_CHECK_INTERVAL`,
which a 3 s timeout does not notice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from callrec.failure_policy import is_strict
from callrec.media.layout import Side
from callrec.media.rtp_stream import RtpStream
from callrec.media.stereo import StereoStream

MEDIA_TIMEOUT = 3.0
MEDIA_CHECK_INTERVAL = 0.5
# Every stream of the tap lost (a mixed tap's only one, or both stereo sides).
MEDIA_LOST = "media stream lost"

Stream = RtpStream | StereoStream


def media_lost_on(side: Side) -> str:
    """The failure reason of one stereo side lost while the other still sends."""
    return f"{MEDIA_LOST} on the {side_name(side)} side"


def side_name(side: Side) -> str:
    """How the recording, the logs and the audit name a side: caller, callee."""
    return side.name.lower()


# Every reason the watchdog reports: a recording may stay open through each.
MEDIA_LOSSES = frozenset({MEDIA_LOST, *(media_lost_on(side) for side in Side)})


def is_media_loss(reason: str) -> bool:
    """Whether a mid-call failure is lost media (of every stream or of one side)."""
    return reason in MEDIA_LOSSES


def ends_recording(reason: str, on_failure: str) -> bool:
    """The mid-call failure rule shared by both front ends (re-exported by callrec.tap).

    Lost media (every stream, or one side of a stereo tap) keeps a
    best-effort recording open (the audio may come back after a gap: the tap
    marked the loss); any other failure (the writer broke, disk full, the
    length limit), or a strict policy, ends the recording, and it is sealed
    at once (:meth:`callrec.tap.RecordingTap.end_now`).
    """
    return not is_media_loss(reason) or is_strict(on_failure)


@dataclass(frozen=True, slots=True)
class MediaChange:
    """What one check found: a stream lost (``lost``) or back.

    ``side`` is None for every stream of the tap at once (a mixed tap's only
    stream, or both stereo sides); ``idle`` is how long it had been silent.
    """

    lost: bool
    side: Side | None
    idle: float = 0.0

    @property
    def reason(self) -> str:
        return MEDIA_LOST if self.side is None else media_lost_on(self.side)

    def record(self, at: float) -> dict[str, Any]:
        """The recording's mark: ``media-lost`` (it stopped ``idle_seconds``
        before ``at``) or ``media-back``; a side's names it."""
        record: dict[str, Any] = {"type": "media-lost" if self.lost else "media-back", "at": at}
        if self.lost:
            record["idle_seconds"] = round(self.idle, 3)
        if self.side is not None:
            record["side"] = side_name(self.side)
        return record


class MediaWatchdog:
    """Calls ``on_change`` when a stream of ``stream`` stops or comes back.

    A paused stream is not watched (nothing is recorded, and Asterisk may
    stop sending): each stream gets a full timeout again after the pause. A
    stream whose writer failed is not watched either: that was reported by
    its own path.
    """

    def __init__(
        self, stream: Stream, timeout: float, on_change: Callable[[MediaChange], None]
    ) -> None:
        self._stream = stream
        self._timeout = timeout
        self._on_change = on_change
        self._sides: tuple[Side | None, ...] = (
            tuple(Side) if isinstance(stream, StereoStream) else (None,)
        )
        # Packets of each stream at the last check, and when that count last
        # moved: the packet path never reads a clock for the watchdog.
        self._seen = [0] * len(self._sides)
        self._moved = [0.0] * len(self._sides)
        self._quiet = [0] * len(self._sides)  # checks in a row without a packet
        self._silent: frozenset[int] = frozenset()  # indexes into _sides
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._moved = [time.monotonic()] * len(self._sides)
        self._schedule()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _schedule(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(MEDIA_CHECK_INTERVAL, self._check)

    def _counts(self) -> tuple[int, ...]:
        stream = self._stream
        if isinstance(stream, StereoStream):
            return tuple(leg.packets for leg in stream.legs)
        return (stream.packets,)

    def _check(self) -> None:
        stream = self._stream
        if stream.error is not None:
            self._timer = None
            return
        self._schedule()
        now = time.monotonic()
        if stream.paused:
            self._moved = [now] * len(self._sides)  # a full timeout again after the pause
            self._quiet = [0] * len(self._sides)
            return
        for i, count in enumerate(self._counts()):
            if count != self._seen[i]:
                self._seen[i], self._moved[i], self._quiet[i] = count, now, 0
            else:
                self._quiet[i] += 1
        idle = [now - moved for moved in self._moved]
        silent = self._silent_now(idle)
        if silent != self._silent:
            before, self._silent = self._silent, silent
            for change in self._changes(before, silent, idle):
                self._on_change(change)

    def _silent_now(self, idle: list[float]) -> frozenset[int]:
        """The streams silent for the timeout; every one, or those lost alone.

        A side is lost alone only while the other still sends: the other had
        packets in the last check, and this side none in the two before it,
        so two sides that stop together (a few ms apart, across a check) are
        one loss of the whole tap, not a side's first.
        """
        every = frozenset(range(len(self._sides)))
        silent = frozenset(i for i in every if idle[i] >= self._timeout)
        if silent == every:
            return every
        was_alone = self._silent if self._silent != every else frozenset()
        quiet = self._quiet
        return frozenset(
            i
            for i in silent
            if i in was_alone or (quiet[i] >= 2 and all(quiet[j] == 0 for j in every - {i}))
        )

    def _changes(
        self, before: frozenset[int], now: frozenset[int], idle: list[float]
    ) -> list[MediaChange]:
        """Backs first, then losses, so the marks follow the audio's order.

        Every stream silent is one loss of the whole tap, as a mixed tap's;
        coming out of it, a side still silent is that side's loss from then.
        """
        every = frozenset(range(len(self._sides)))
        sides = self._sides
        changes: list[MediaChange] = []
        if before == every:
            changes.append(MediaChange(lost=False, side=None))
            newly = now
        else:
            changes += [MediaChange(lost=False, side=sides[i]) for i in sorted(before - now)]
            newly = now - before
        if now == every:
            changes.append(MediaChange(lost=True, side=None, idle=min(idle)))
        else:
            changes += [MediaChange(lost=True, side=sides[i], idle=idle[i]) for i in sorted(newly)]
        return changes
