"""Two RTP streams of one call into one stereo recording, sample-aligned.

A stereo tap has two ExternalMedia streams: what the caller says (left) and
what the caller hears (right), each from its own UDP source
(:mod:`callrec.media.layout`). Each is ordered by its own reorder buffer (a
:class:`StereoLeg`, an :class:`~callrec.media.rtp_stream.RtpStream` whose
buffer passes on each payload's RTP timestamp); :class:`StereoAligner` puts
every payload on one timeline and writes interleaved sample frames.

Where a payload goes: its RTP timestamp says where it lies in its own
stream. Loss advances it, and so do the silences in which Asterisk sends
nothing (res_rtp_asterisk stamps the first frame after 80 ms or more without
one with the time that passed). Arrival time, one monotonic clock for both
streams, anchors each stream on the common timeline at its first packet, and
is read again only now and then: every :data:`CHECK_EVERY` packets, to move a
stream whose timestamps drift from real time (its source's clock is not
Asterisk's), and at a timestamp jump, to catch one that no elapsed time
explains (a restarted stream). The in-order packet path reads no clock.

A side without audio gets silence on its own channel only: lost packets, a
stream that stalls, a side that says nothing. Where both sides lack audio at
once, a gap frame. One side's audio waits for the other's at most
:data:`HOLD` seconds; past that the silent side is padded up to HOLD behind
the other, and what it sends for a stretch already written is dropped
(counted as ``late``).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import fields
from functools import partial
from typing import Any

from callrec.media.codecs import codec_of
from callrec.media.layout import Side
from callrec.media.rtp import ReorderBuffer
from callrec.media.rtp_stream import COALESCE, Attach, AudioWriter, Hold, RtpStats, RtpStream

# Seconds one side's audio waits for the other's before the other is padded.
HOLD = 0.5
# Packets of one side between two readings of the clock (drift checks).
CHECK_EVERY = 10
# Checks per drift window: a side is moved by the least lag of a window
# (5 s), so network and event-loop jitter, which only ever delays, is not
# taken for drift.
CHECK_WINDOW = 25
# Seconds a side may lag or lead real time before it is moved: each side
# within this of the common clock keeps the two within one 20 ms packet.
TOLERANCE = 0.01
# A timestamp jump that disagrees with arrival time by more than this many
# seconds is not believed (the stream restarted); arrival time places it.
RESYNC = 1.0

TimedSink = Callable[[int, bytes], object]
_TS_WRAP = 1 << 32
_TS_HALF = 1 << 31


def _discard(_: object) -> None:
    """Sink of the plain reorder-buffer paths a timed buffer never uses."""


def _discard_timed(_ts: int, _payload: bytes) -> None:
    """Sink of a leg whose recording failed."""


class _TimedBuffer(ReorderBuffer):
    """A reorder buffer that passes each payload on with its RTP timestamp.

    Lost packets need no gap call: the next payload's timestamp says where
    it goes.
    """

    __slots__ = ("timed",)

    def __init__(self, timed: TimedSink, *, bytes_per_sample: int) -> None:
        super().__init__(_discard, _discard, bytes_per_sample=bytes_per_sample)
        self.timed = timed

    def release(self, seq: int, ts: int, payload: bytes) -> None:
        self.timed(ts, payload)  # first: a sink that raises has not taken the packet
        self.next_seq = (seq + 1) & 0xFFFF
        self._last_ts = ts
        self.released += 1


class _Channel:
    """One side's audio waiting to be interleaved, and where it stands.

    ``chunks`` holds payloads (bytes) and silences (sample counts) that end
    at timeline sample ``end``; ``start``/``n``/``ts`` describe the last
    payload placed.
    """

    __slots__ = (
        "anchored",
        "checks",
        "chunks",
        "count",
        "end",
        "late",
        "min_lag",
        "moved",
        "n",
        "other",
        "resyncs",
        "start",
        "ts",
    )

    def __init__(self, end: int) -> None:
        self.chunks: deque[bytes | int] = deque()
        self.end = end
        self.other = self  # the other side (set by the aligner)
        self.late = self.moved = self.resyncs = 0
        self.unanchor()

    def unanchor(self) -> None:
        self.anchored = False
        self.start = self.n = self.ts = self.checks = 0
        self.count = CHECK_EVERY  # packets until the next drift check
        self.min_lag = float("inf")

    def pad(self, to: int) -> None:
        if to > self.end:
            self.chunks.append(to - self.end)
            self.end = to


class StereoAligner:
    """Places two sides' payloads on one timeline; writes interleaved frames.

    ``now`` is the arrival clock (monotonic seconds), read only when a side
    starts, jumps or is due a drift check.
    """

    def __init__(
        self,
        writer: AudioWriter,
        codec: str,
        rate: int,
        *,
        now: Callable[[], float] = time.monotonic,
        batch: int = COALESCE,
    ) -> None:
        spec = codec_of(codec).spec
        self._writer = writer
        self._width = spec.sample_width
        self._silence = spec.silence
        self._rate = rate
        self._now = now
        # Aligned audio written per frame: as the mono path joins 5 packets.
        self._batch = max(1, batch) * rate // 50
        self._hold = round(HOLD * rate)
        self._tolerance = TOLERANCE * rate
        self._resync = RESYNC * rate
        self.written = 0  # sample frames written (audio and gaps)
        self._origin: tuple[float, float] | None = None  # (time, timeline position)
        self.channels = (_Channel(0), _Channel(0))
        self.channels[0].other, self.channels[1].other = self.channels[1], self.channels[0]

    def sink(self, side: Side) -> TimedSink:
        """Where ``side``'s ordered payloads go: ``sink(rtp_timestamp, payload)``."""
        return partial(self.place, self.channels[side])

    # --- per packet -----------------------------------------------------------

    def place(self, ch: _Channel, ts: int, payload: bytes) -> None:
        """One ordered payload of one side."""
        n = len(payload) // self._width
        end = ch.end
        if ch.anchored and (ts - ch.ts) % _TS_WRAP == ch.n and ch.start + ch.n == end:
            # The common case: the payload right after the last one.
            ch.chunks.append(payload)
            ch.start, ch.end = end, end + n
        else:
            self._place_apart(ch, ts, n, payload)
        ch.ts, ch.n = ts, n
        ch.count -= 1
        if not ch.count:
            self._check(ch)
        written, batch = self.written, self._batch
        if ch.end - written >= batch:
            other = ch.other.end
            if other - written >= batch or ch.end - other > self._hold:
                self._emit()

    def _place_apart(self, ch: _Channel, ts: int, n: int, payload: bytes) -> None:
        """The first payload, one after loss or a silence, or one overlapping the end."""
        if not ch.anchored:
            start = self._anchor(ch, n)
        else:
            step = (ts - ch.ts) % _TS_WRAP
            start = ch.start + step if step == ch.n else self._jump(ch, step, n)
        ch.start = start
        if start >= ch.end:
            ch.pad(start)
            ch.chunks.append(payload)
            ch.end = start + n
            return
        cut = ch.end - start
        if cut >= n:  # its stretch is written already: too late
            ch.late += 1
            return
        ch.chunks.append(payload[cut * self._width :])
        ch.end = start + n

    def _expected_end(self, now: float) -> float:
        """Where audio arriving ``now`` ends on the timeline (by the first packet's arrival)."""
        assert self._origin is not None
        at, position = self._origin
        return position + (now - at) * self._rate

    def _anchor(self, ch: _Channel, n: int) -> int:
        """A side's first payload (of the recording, or since a resume)."""
        now = self._now()
        if self._origin is None:
            self._origin = (now, float(max(ch.end, self.written) + n))
        ch.anchored = True
        return round(self._expected_end(now)) - n

    def _jump(self, ch: _Channel, step: int, n: int) -> int:
        """Timestamps moved by other than the last payload's length: loss, a
        silence, or a restart. Believed unless arrival time says otherwise."""
        delta = step - _TS_WRAP if step >= _TS_HALF else step
        by_timestamp = ch.start + delta
        by_arrival = round(self._expected_end(self._now())) - n
        if abs(by_timestamp - by_arrival) > self._resync:
            ch.resyncs += 1
            return by_arrival
        return by_timestamp

    def _check(self, ch: _Channel) -> None:
        """Note how far this side lags real time; at a window's end, move it."""
        ch.count = CHECK_EVERY
        lag = self._expected_end(self._now()) - (ch.start + ch.n)
        ch.min_lag = min(ch.min_lag, lag)
        ch.checks += 1
        if ch.checks < CHECK_WINDOW:
            return
        if abs(ch.min_lag) > self._tolerance:
            # Later payloads land this much later (a silence) or earlier (cut).
            ch.start += round(ch.min_lag)
            ch.moved += 1
        ch.checks = 0
        ch.min_lag = float("inf")

    # --- writing ----------------------------------------------------------------

    def _emit(self) -> None:
        left, right = self.channels
        # A side more than HOLD behind had nothing there: silence. Only that
        # far: what it sends late (out of its reorder buffer) still fits.
        floor = max(left.end, right.end) - self._hold
        left.pad(floor)
        right.pad(floor)
        ready = min(left.end, right.end) - self.written
        if ready >= self._batch:
            self._write(ready)

    def finish(self) -> None:
        """Write everything held, the shorter side padded (before a marker, at the end)."""
        left, right = self.channels
        ahead = max(left.end, right.end)
        left.pad(ahead)
        right.pad(ahead)
        if ahead > self.written:
            self._write(ahead - self.written)

    def restart(self) -> None:
        """After a pause: each side is anchored again by its next packet's arrival."""
        self.finish()
        self._origin = None
        for ch in self.channels:
            ch.chunks.clear()
            ch.end = self.written
            ch.unanchor()

    def _write(self, frames: int) -> None:
        left, right = self.channels
        while frames > 0:
            head_l, head_r = left.chunks[0], right.chunks[0]
            if isinstance(head_l, int) and isinstance(head_r, int):
                gap = min(head_l, head_r, frames)
                self._take(left, gap)
                self._take(right, gap)
                self._writer.write_gap(gap)
            else:
                gap = frames
                pair = self._take(left, frames), self._take(right, frames)
                self._writer.write_audio(self._interleave(*pair))
            self.written += gap
            frames -= gap

    def _take(self, ch: _Channel, frames: int) -> bytes:
        """The next ``frames`` samples of one side, silences as codec silence."""
        parts: list[bytes] = []
        width, chunks = self._width, ch.chunks
        need = frames * width  # bytes
        while need:
            head = chunks.popleft()
            if isinstance(head, int):  # a silence, in samples
                take = min(head, need // width)
                parts.append(self._silence * take)
                if take < head:
                    chunks.appendleft(head - take)
                need -= take * width
            elif len(head) <= need:
                parts.append(head)
                need -= len(head)
            else:
                parts.append(head[:need])
                chunks.appendleft(head[need:])
                need = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _interleave(self, left: bytes, right: bytes) -> bytes:
        out = bytearray(2 * len(left))
        if self._width == 1:
            out[0::2] = left
            out[1::2] = right
        else:
            view = memoryview(out).cast("H")
            view[0::2] = memoryview(left).cast("H")
            view[1::2] = memoryview(right).cast("H")
        return bytes(out)


class StereoLeg(RtpStream):
    """One side's RTP: ordered by its own buffer, placed by the stereo stream's aligner."""

    def __init__(
        self,
        owner: StereoStream,
        side: Side,
        sink: TimedSink,
        *,
        hold: Hold,
        attach: Attach,
    ) -> None:
        super().__init__(
            owner.writer,
            owner.codec,
            owner.call_id,
            hold=hold,
            attach=attach,
            on_error=owner.failed,
        )
        self.side = side
        self._sink = sink
        self._timed = _TimedBuffer(sink, bytes_per_sample=codec_of(owner.codec).sample_width)
        self._buffer = self._timed

    def hold_back(self) -> None:
        """Paused: payloads are counted, not recorded (the buffer keeps ordering them)."""
        self._timed.timed = self._count_paused_timed

    def pass_on(self) -> None:
        """Recording again: payloads go to the aligner."""
        self._timed.timed = self._sink

    def _count_paused_timed(self, _ts: int, _payload: bytes) -> None:
        self._paused_packets += 1

    def fail(self, exc: Exception) -> None:
        self._timed.timed = _discard_timed
        super().fail(exc)

    def stop_quietly(self, exc: Exception) -> None:
        """The other side failed the recording: stop too, without a second report."""
        self._timed.timed = _discard_timed
        self.error = exc


class StereoStream:
    """One call's two RTP streams into one 2-channel writer. Made by
    :meth:`MediaRecorder.open_stereo`; ``legs[side]`` is the stream the
    recorder routes that side's source to."""

    def __init__(
        self,
        writer: AudioWriter,
        codec: str,
        rate: int,
        call_id: str,
        *,
        hold: Hold,
        attach: Attach,
        on_error: Callable[[StereoStream, Exception], None] | None = None,
        coalesce: int = COALESCE,
        now: Callable[[], float] = time.monotonic,
    ) -> None:
        self.writer = writer
        self.codec = str(codec)
        self.call_id = call_id
        self.on_error = on_error
        self.error: Exception | None = None
        self._paused = False
        self.aligner = StereoAligner(writer, codec, rate, now=now, batch=coalesce)
        self.legs = tuple(
            StereoLeg(self, side, self.aligner.sink(side), hold=hold, attach=attach)
            for side in Side
        )

    def expect_source(self, side: Side, host: str, port: int) -> None:
        """Accept ``side``'s RTP from ``host:port`` (its ExternalMedia channel)."""
        self.legs[side].expect_source(host, port)

    def pause(self, at: float, source: str | None = None) -> None:
        """Stop recording both sides: a pause frame (who asked: ``source``); later
        packets are counted, not kept."""
        if self._paused or self.error is not None:
            return
        self.flush()
        self.writer.write_pause(at, source)
        self._paused = True
        for leg in self.legs:
            leg.hold_back()

    def resume(self, at: float, source: str | None = None) -> None:
        """Record again after :meth:`pause`: a resume frame; each side re-anchored."""
        if not self._paused or self.error is not None:
            return
        # The frame first: a writer refusing it (the 7-day limit, a failed disk)
        # leaves the stream paused, as a mono stream is (rtp_stream.py).
        self.writer.write_resume(at, source)
        for leg in self.legs:
            leg.flush()  # what was held while paused is discarded
            leg.pass_on()
        self.aligner.restart()
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def packets(self) -> int:
        """Datagrams received on both sides (a watchdog compares it between checks)."""
        return sum(leg.packets for leg in self.legs)

    @property
    def stats(self) -> RtpStats:
        """Both sides' counters summed; ``late`` includes what came after its stretch
        was written with silence."""
        total = RtpStats()
        for leg in self.legs:
            _add(total, leg.stats)
        total.late += sum(ch.late for ch in self.aligner.channels)
        total.resyncs += sum(ch.resyncs for ch in self.aligner.channels)
        return total

    def side_stats(self) -> dict[str, dict[str, Any]]:
        """Each side's counters, for the recording's closing summary."""
        out = {}
        for leg, ch in zip(self.legs, self.aligner.channels, strict=True):
            stats = leg.stats.as_dict()
            stats.update(late=stats["late"] + ch.late, resyncs=stats["resyncs"] + ch.resyncs)
            out[leg.side.name.lower()] = {**stats, "drift_moves": ch.moved}
        return out

    def flush(self) -> None:
        """Write everything held: each side's reorder buffer, then the aligned audio."""
        for leg in self.legs:
            leg.flush()
        self.aligner.finish()

    def fail(self, exc: Exception) -> None:
        """The writer failed: stop both sides, tell the owner once."""
        self.legs[0].fail(exc)

    def failed(self, leg: RtpStream, exc: Exception) -> None:
        """A leg's writer call failed (every leg writes into the one writer)."""
        if self.error is not None:
            return
        self.error = exc
        for other in self.legs:
            if other is not leg:
                other.stop_quietly(exc)
        if self.on_error is not None:
            self.on_error(self, exc)


def _add(total: RtpStats, part: RtpStats) -> None:
    for f in fields(RtpStats):
        setattr(total, f.name, getattr(total, f.name) + getattr(part, f.name))
