"""Pausing a live recording: who asked, when, for how long; the hold of a feature code.

An agent must be able to keep a card number out of a recording (PCI DSS): while
a recording is paused nothing of the call's audio reaches the file. The file
keeps a pause frame and a resume frame, each naming who asked
(:class:`PauseSource`, docs/FORMAT.md "Pauses"), and the closing summary lists
every pause; a player renders each as silence of its true length.

A feature code takes several digits (``*1``) and Asterisk reports each digit
only when it ends, so the audio between its first digit and its last would
otherwise be written before the pause could begin. :meth:`PauseControl.hold`
keeps what is heard from the first digit on in memory, never on disk: the
completed code pauses from the moment the hold began and the held audio is
dropped; a code that is not completed releases it into the file unchanged.

A pause outlives a crash of the Stasis app: each change is kept in the
call's live record as an :class:`OpenPause` (:mod:`ari_app.journal`), and a
continuation recording of a call that was paused starts paused
(:meth:`PauseControl.carry_over`, why its pause begins where it does is said
there).

Shared by both front ends through :class:`callrec.tap.RecordingTap`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from callrec.clock import Clock
from callrec.errors import CallrecError

logger = logging.getLogger(__name__)

# A hold lasts the few seconds between a code's digits; past this much audio
# (10 s of 16-bit audio at 16 kHz) it is released, so memory stays bounded
# whatever the digits do.
MAX_HOLD_BYTES = 320_000


class PauseSource(StrEnum):
    """Who paused or resumed a recording, as its pause and resume frames name it."""

    AGENT_CODE = "agent-code"  # the agent's feature code ([recording] pause_code)
    AGI = "agi"  # the dialplan's /pause or /resume
    CONTROL = "control"  # callrec calls pause|resume (the control socket)
    AUTO_RESUME = "auto-resume"  # [recording] auto_resume seconds passed


# The summary's note on a pause that began in the recording this one continues.
CARRIED_OVER = (
    "paused when the recorder restarted: asked for at asked_at, in the recording"
    " this one continues; this recording holds nothing of the call before the resume"
)


@dataclass(frozen=True, slots=True)
class OpenPause:
    """A pause still on, as a call's live record keeps it (:mod:`callrec.live`): when
    it was asked for, who asked, and when ``[recording] auto_resume`` ends it (None:
    never)."""

    start: float
    source: PauseSource
    resume_by: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "source": str(self.source), "resume_by": self.resume_by}


class MarkWriter(Protocol):
    """The writer side of a recording (:class:`callrec.recording.RecordingWriter`)."""

    def write_audio(self, payload: bytes) -> Any: ...

    def write_gap(self, samples: int) -> Any: ...

    def write_pause(self, at: float, source: str | None = None) -> Any: ...

    def write_resume(self, at: float, source: str | None = None) -> Any: ...


class Pausable(Protocol):
    """A recording's RTP side (:class:`~callrec.media.rtp_stream.RtpStream`, or the
    stereo stream): it flushes what it holds and writes the frame itself."""

    error: Exception | None

    def pause(self, at: float, source: str | None = None) -> None: ...

    def fail(self, exc: Exception) -> None: ...

    def resume(self, at: float, source: str | None = None) -> None: ...

    @property
    def paused(self) -> bool: ...


@dataclass
class Pause:
    """One pause of a recording; ``end`` None while it lasts (or when the recording
    ended paused). ``resume_by``: when auto-resume ends it; ``asked_at``: when it was
    asked for, for a pause carried over from the recording this one continues."""

    start: float
    source: PauseSource
    end: float | None = None
    resumed_by: PauseSource | None = None
    resume_by: float | None = None
    asked_at: float | None = None

    def seconds(self, until: float) -> float:
        """How long it lasted in this recording, or lasts until ``until``."""
        return max(0.0, (until if self.end is None else self.end) - self.start)

    def record(self, until: float) -> dict[str, Any]:
        """As the closing summary lists it (docs/FORMAT.md "Pauses"); a carried-over
        pause also says when it was asked for, with a note."""
        out: dict[str, Any] = {
            "start": self.start,
            "end": self.end,
            "seconds": round(self.seconds(until), 3),
            "source": str(self.source),
            "resumed_by": None if self.resumed_by is None else str(self.resumed_by),
        }
        if self.asked_at is not None:
            out.update(asked_at=self.asked_at, note=CARRIED_OVER)
        return out

    def still_open(self) -> OpenPause:
        """What a live record keeps of it while it lasts."""
        asked = self.start if self.asked_at is None else self.asked_at
        return OpenPause(asked, self.source, self.resume_by)


@dataclass(frozen=True, slots=True)
class PauseTotals:
    """What the audit line says of a recording's pauses."""

    count: int
    seconds: float


NO_PAUSES = PauseTotals(0, 0.0)


class PauseGate:
    """What the RTP side writes to: the recording, or (during a hold) memory.

    Not holding, ``write_audio`` and ``write_gap`` are the writer's own
    methods, so the per-packet path pays nothing for the gate.
    """

    def __init__(self, writer: MarkWriter) -> None:
        self._writer = writer
        self.write_audio: Callable[[bytes], Any] = writer.write_audio
        self.write_gap: Callable[[int], Any] = writer.write_gap
        self.held_since: float | None = None
        self._held: list[bytes | int] = []
        self._held_bytes = 0

    @property
    def path(self) -> Path | None:
        """The recording's file: the recorder syncs it by this (``MediaRecorder._sync``)."""
        path = getattr(self._writer, "path", None)
        return path if isinstance(path, Path) else None

    def hold(self, at: float) -> None:
        self.held_since = at
        self.write_audio, self.write_gap = self._keep_audio, self._keep_gap

    def release(self) -> None:
        """Write what was held, in order, and write through again."""
        held = self._end_hold()  # written through from now, even if one write fails
        for item in held:
            if isinstance(item, int):
                self._writer.write_gap(item)
            else:
                self._writer.write_audio(item)

    def drop(self) -> None:
        """Forget what was held (the recording is over, or paused from the hold's start)."""
        self._end_hold()

    def write_pause(self, at: float, source: str | None = None) -> None:
        self._end_hold()  # what was heard since the code's first digit is dropped
        self._writer.write_pause(at, source)

    def write_resume(self, at: float, source: str | None = None) -> None:
        self._writer.write_resume(at, source)

    def _end_hold(self) -> list[bytes | int]:
        held, self._held, self._held_bytes = self._held, [], 0
        self.held_since = None
        self.write_audio, self.write_gap = self._writer.write_audio, self._writer.write_gap
        return held

    def _keep_audio(self, payload: bytes) -> None:
        self._held.append(bytes(payload))
        self._held_bytes += len(payload)
        if self._held_bytes > MAX_HOLD_BYTES:
            self.release()

    def _keep_gap(self, samples: int) -> None:
        self._held.append(samples)


class PauseControl:
    """The pauses of one recording: its tap wraps the writer in :meth:`gate`,
    then :meth:`attach`\\ es the RTP side; :meth:`close` before sealing."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._gate: PauseGate | None = None
        self._stream: Pausable | None = None
        self._closed = False
        self._carried: OpenPause | None = None
        self._early: OpenPause | None = None  # asked for before the RTP side attached
        self._watchers: list[Callable[[OpenPause | None], None]] = []
        self.pauses: list[Pause] = []

    def gate(self, writer: MarkWriter) -> PauseGate:
        """What the RTP side should write to instead of ``writer``."""
        self._gate = PauseGate(writer)
        return self._gate

    def attach(self, stream: Pausable) -> None:
        """The RTP side; a carried-over pause begins on it before any audio can arrive."""
        self._stream = stream
        if self._carried is not None:
            self._begin_carried(self._carried)
        elif self._early is not None:
            early, self._early = self._early, None
            if not self.pause(early.source, resume_by=early.resume_by):
                logger.error("a pause asked for while the recording started could not begin")

    def watch(self, changed: Callable[[OpenPause | None], None]) -> None:
        """Call ``changed`` with the pause each time one begins, with None at a resume."""
        self._watchers.append(changed)

    def carry_over(self, pause: OpenPause) -> None:
        """The recording this one continues ended paused (a crash, a stop): this one
        starts paused, before its RTP side can write anything (call before :meth:`attach`).

        Its pause frame stands at this recording's first instant, not at
        ``pause.start``: a file vouches only for its own time. A frame dated
        earlier would be played back as silence from when the pause was asked
        for, a span this file never covered (the part before, the minutes no
        recorder ran), and would set everything after the resume later than it
        was said. Who asked is kept as the frame's source, and the summary's
        pause says when it was asked for (``asked_at``) with a note, so the
        two recordings together account for the pause from its start: the
        earlier one's pause frame, the gap while no recorder ran, this one's.
        """
        self._carried = pause
        if self._stream is not None:
            self._begin_carried(pause)

    def _begin_carried(self, carried: OpenPause) -> None:
        self._carried = None
        if self.pause(carried.source, resume_by=carried.resume_by, asked_at=carried.start):
            return
        logger.error("a recording that continues a paused one could not start paused")

    @property
    def paused(self) -> bool:
        if self._stream is None:  # starting: a pause asked for or carried over waits
            return self._early is not None or self._carried is not None
        return self._stream.paused

    def _ask_early(self, source: PauseSource, resume_by: float | None) -> bool:
        """A pause asked for while the recording starts (its snoop and media being
        set up, a crashed recorder's call being taken over): kept, and begun at
        :meth:`attach`, before any audio can arrive. Refusing it instead would let
        the agent read out a card number into a recording that then starts."""
        if self._closed or self.paused:
            return False
        self._early = OpenPause(self._clock.wall(), source, resume_by)
        self._tell(self._early)  # the live record keeps it, should a crash come first
        return True

    @property
    def holding(self) -> bool:
        return self._gate is not None and self._gate.held_since is not None

    def _live(self) -> tuple[PauseGate, Pausable] | None:
        """The gate and the RTP side while the recording can still change."""
        gate, stream = self._gate, self._stream
        if self._closed or gate is None or stream is None or stream.error is not None:
            return None
        return gate, stream

    def hold(self) -> bool:
        """Keep what is heard from now in memory (a pause code's first digit)."""
        live = self._live()
        if live is None or self.paused or self.holding:
            return False
        live[0].hold(self._clock.wall())
        return True

    def release(self) -> None:
        """The code was not completed: what was held goes into the recording.

        Never raises for the writer: audio the writer refuses (the length
        limit, a full disk) ends the recording through the RTP side's failure
        path, as a refused packet does; a recording already over drops it.
        """
        gate, stream = self._gate, self._stream
        if gate is None or not self.holding:
            return
        if stream is not None and stream.error is not None:
            gate.drop()
            return
        try:
            gate.release()
        except (CallrecError, OSError) as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        """The writer refused a mark or held audio: the RTP side fails as if a packet
        had been refused (the recording stops, its owner is told once)."""
        stream = self._stream
        if stream is None:
            raise exc
        if stream.error is None:
            stream.fail(exc)

    def pause(
        self,
        source: PauseSource,
        at: float | None = None,
        *,
        auto_resume: float = 0.0,
        resume_by: float | None = None,
        asked_at: float | None = None,
    ) -> bool:
        """Stop recording now (or from the hold's start); False when paused already
        or not recording. ``auto_resume`` seconds from its start (0: never), or
        ``resume_by``, is when the caller means to resume it by itself."""
        if self._stream is None:
            if resume_by is None and auto_resume > 0:
                resume_by = self._clock.wall() + auto_resume
            return self._ask_early(source, resume_by)
        live = self._live()
        if live is None or self.paused:
            return False
        gate, stream = live
        start = gate.held_since
        if start is None:
            start = self._clock.wall() if at is None else at
        try:
            stream.pause(start, source)  # flushes into the gate, which drops a hold
        except (CallrecError, OSError) as exc:
            self._failed(exc)
        if not stream.paused or stream.error is not None:  # the writer failed
            self.release()
            return False
        if auto_resume > 0:
            resume_by = start + auto_resume
        pause = Pause(start, source, resume_by=resume_by, asked_at=asked_at)
        self.pauses.append(pause)
        self._tell(pause.still_open())
        return True

    def resume(self, source: PauseSource, at: float | None = None) -> bool:
        """Record again; False when not paused, or when the writer refuses the resume
        (a pause whose silence would pass the length limit): the recording then
        ends paused, through the RTP side's failure path."""
        if self._stream is None and not self._closed and self.paused:
            self._early = self._carried = None  # resumed before it could begin
            self._tell(None)
            return True
        live = self._live()
        if live is None or not self.paused:
            return False
        _, stream = live
        end = self._clock.wall() if at is None else at
        last = self.current
        try:
            stream.resume(end, source)
        except (CallrecError, OSError) as exc:
            self._failed(exc)
            return False
        if last is not None:
            last.end, last.resumed_by = end, source
        self._tell(None)
        return True

    @property
    def current(self) -> Pause | None:
        """The pause on now (None when not paused)."""
        last = self.pauses[-1] if self.pauses else None
        return last if last is not None and last.end is None and self.paused else None

    def _tell(self, pause: OpenPause | None) -> None:
        for changed in self._watchers:
            changed(pause)

    def close(self) -> None:
        """Before sealing: a hold still open is released (its code never completed).

        Never raises for the writer (:meth:`release`): held audio refused at
        the limit is lost, and the recording still seals.
        """
        try:
            self.release()
        finally:
            self._closed = True

    def records(self, until: float) -> list[dict[str, Any]]:
        """Every pause, for the closing summary (an open one lasts ``until``)."""
        return [pause.record(until) for pause in self.pauses]

    def totals(self, until: float) -> PauseTotals:
        return PauseTotals(len(self.pauses), sum(p.seconds(until) for p in self.pauses))
