"""The consent policy as a pure, clock-driven state machine.

The front ends (the ARI app and the AGI gate) only translate their events into
calls on a :class:`ConsentGate` and await :meth:`ConsentGate.decision`; the
table of docs/DESIGN.md lives here, once:

=============================================================  ==================
caller does                                                    decision
=============================================================  ==================
hangs up before the disclosure ends or within ``grace`` after  declined-hangup
presses the opt-out digit at any time before a decision        declined-dtmf
explicit mode: presses the accept digit once the disclosure    granted-dtmf
has started
explicit mode: no digit within ``timeout`` after it ends       declined-timeout
implied mode: still on the line ``grace`` after it ends        implied
=============================================================  ==================

Boundaries are half-open: at exactly ``prompt end + grace`` the grace is over,
so a hang-up at that instant comes after an ``implied`` decision; likewise a
digit at exactly ``prompt end + timeout`` comes after ``declined-timeout``.
Every deadline is checked against the clock on each event, so the outcome
does not depend on which asyncio task happens to run first. A hang-up or digit
after the decision never changes it (it is still kept in the timeline).

Digits other than the ones the mode uses are ignored but recorded; an accept
digit in implied mode is ignored. An accept digit pressed before the
disclosure has started is ignored too: nobody can agree to what they have not
begun to hear.

A disclosure that could not be played (``prompt_failed``) means nobody was
told, so nobody consented. This is not a sixth row of the table: the gate
raises :class:`DisclosureFailed` (a :class:`RecordingUnavailable`) and the
front end applies ``recording.on_failure`` (:mod:`callrec.failure_policy`)
exactly as for any other reason recording cannot run: best-effort connects
the call unrecorded and alerts, strict refuses the call. Nothing is recorded
in either case.

A disclosure cut short is not one that could not be played: the caller heard
its beginning. The timeline says when and by what (:class:`Interruption`): a
hang-up or a deciding digit while it plays marks it at once; a front end
names any other cut (the recorder or the PBX ending the call) with
:meth:`ConsentGate.prompt_interrupted`. Asterisk reports a playback cut by a
hang-up as ``failed`` (trace 02); once the prompt is marked interrupted, a
later ``prompt_failed`` is that same cut and is not kept as a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from callrec.clock import Clock
from callrec.errors import RecordingUnavailable

ConsentMode = Literal["implied", "explicit"]
DeclineAction = Literal["continue", "hangup"]


class Decision(StrEnum):
    IMPLIED = "implied"
    DECLINED_HANGUP = "declined-hangup"
    DECLINED_DTMF = "declined-dtmf"
    GRANTED_DTMF = "granted-dtmf"
    DECLINED_TIMEOUT = "declined-timeout"


_RECORDS = frozenset({Decision.IMPLIED, Decision.GRANTED_DTMF})


def records(decision: Decision) -> bool:
    """Whether this decision allows the call to be recorded."""
    return decision in _RECORDS


class Interruption(StrEnum):
    """What cut the disclosure short, for the evidence."""

    CALLER_HANGUP = "caller-hangup"
    DIGIT = "digit"  # the opt-out or accept digit, which stops the prompt
    CALL_ENDED = "call-ended"  # by the recorder or the PBX (shutdown, restart, error)


class DisclosureFailed(RecordingUnavailable):
    """The disclosure could not be played: nobody consented."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"disclosure not played: {reason}")


@dataclass(frozen=True)
class ConsentPolicy:
    """The ``[consent]`` rules; ``Config.consent`` is one (``ConsentConfig``)."""

    mode: ConsentMode = "implied"
    grace: float = 2.0
    optout_digit: str = "2"
    accept_digit: str = "1"
    timeout: float = 10.0
    on_decline: DeclineAction = "continue"

    def snapshot(self) -> dict[str, str | float]:
        """The rules in force, for the evidence."""
        return {
            "mode": self.mode,
            "grace": self.grace,
            "optout_digit": self.optout_digit,
            "accept_digit": self.accept_digit,
            "timeout": self.timeout,
            "on_decline": self.on_decline,
        }

    def escape_digits(self) -> str:
        """The digits that may interrupt the disclosure: opt-out, and accept in explicit mode."""
        if self.mode == "explicit":
            return self.optout_digit + self.accept_digit
        return self.optout_digit

    def connects(self, decision: Decision) -> bool:
        """Whether the call goes on to its destination after ``decision``."""
        if decision is Decision.DECLINED_HANGUP:
            return False
        return records(decision) or self.on_decline == "continue"


@dataclass
class ConsentTimeline:
    """Wall-clock times (Unix seconds) of what happened, for the evidence."""

    answered_at: float | None = None
    prompt_started_at: float | None = None
    prompt_finished_at: float | None = None
    prompt_failed_at: float | None = None
    prompt_failure: str | None = None
    prompt_interrupted_at: float | None = None
    prompt_interrupted_by: Interruption | None = None
    decided_at: float | None = None
    hangup_at: float | None = None
    digits: list[tuple[str, float]] = field(default_factory=list)


class ConsentGate:
    """Feed it the call's events; :meth:`decision` resolves per the table."""

    def __init__(self, policy: ConsentPolicy, clock: Clock) -> None:
        self.policy = policy
        self.timeline = ConsentTimeline()
        self._clock = clock
        self._decision: Decision | None = None
        self._failure: DisclosureFailed | None = None
        self._started = False
        self._deadline: float | None = None  # monotonic
        self._changed = asyncio.Event()

    @property
    def decided(self) -> Decision | None:
        """The decision, or None while it is still open."""
        self._expire()
        return self._decision

    def remaining(self) -> float | None:
        """Seconds left of the grace (implied) or timeout (explicit) after the
        disclosure; None before it ended."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - self._clock.monotonic())

    def answered(self) -> None:
        self.timeline.answered_at = self._clock.wall()

    def prompt_started(self) -> None:
        """The disclosure audio began (ARI PlaybackStarted)."""
        self._started = True
        self.timeline.prompt_started_at = self._clock.wall()
        self._changed.set()

    def prompt_finished(self) -> None:
        """The disclosure ended normally (ARI PlaybackFinished, done)."""
        now = self._clock.monotonic()
        self._started = True
        self.timeline.prompt_finished_at = self._clock.wall()
        if self._open():
            wait = self.policy.grace if self.policy.mode == "implied" else self.policy.timeout
            self._deadline = now + wait
        self._changed.set()

    def prompt_failed(self, reason: str) -> None:
        """The disclosure could not be played; see the module docstring."""
        if self.timeline.prompt_interrupted_at is not None:
            return  # the playback ended because it was cut short: no failure
        self.timeline.prompt_failed_at = self._clock.wall()
        self.timeline.prompt_failure = reason
        if self._open():
            self._failure = DisclosureFailed(reason)
        self._changed.set()

    def prompt_interrupted(self, by: Interruption, at: float | None = None) -> None:
        """The disclosure was cut short while it played; only the first cut counts."""
        t = self.timeline
        ended = (t.prompt_finished_at, t.prompt_failed_at, t.prompt_interrupted_at)
        if t.prompt_started_at is None or any(end is not None for end in ended):
            return
        t.prompt_interrupted_at = self._clock.wall() if at is None else at
        t.prompt_interrupted_by = by

    def digit(self, digit: str) -> None:
        """A DTMF digit from the caller."""
        self.timeline.digits.append((digit, self._clock.wall()))
        if not self._open():
            return
        if digit == self.policy.optout_digit:
            self._decide(Decision.DECLINED_DTMF)
        elif self._started and self._accepts(digit):
            self._decide(Decision.GRANTED_DTMF)
        else:
            return
        # A deciding digit is an escape digit: it stops the prompt.
        self.prompt_interrupted(Interruption.DIGIT)

    def _accepts(self, digit: str) -> bool:
        return self.policy.mode == "explicit" and digit == self.policy.accept_digit

    def hangup(self) -> None:
        """The caller hung up."""
        # One instant for both: the evidence must never show the prompt cut
        # after the hang-up that cut it (two clock reads can differ by 1 ms).
        now = self._clock.wall()
        self.timeline.hangup_at = now
        self.prompt_interrupted(Interruption.CALLER_HANGUP, now)
        if self._open():
            self._decide(Decision.DECLINED_HANGUP)

    async def decision(self) -> Decision:
        """Wait for the decision; raises :class:`DisclosureFailed`."""
        while True:
            if not self._open():
                if self._failure is not None:
                    # A fresh instance per waiter: tracebacks do not pile up on one.
                    raise DisclosureFailed(self._failure.reason)
                assert self._decision is not None
                return self._decision
            self._changed.clear()
            await self._wait()

    async def _wait(self) -> None:
        waiter = asyncio.ensure_future(self._changed.wait())
        tasks: set[asyncio.Future[Any]] = {waiter}
        if self._deadline is not None:
            remaining = self._deadline - self._clock.monotonic()
            tasks.add(asyncio.ensure_future(self._clock.sleep(remaining)))
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def _open(self) -> bool:
        self._expire()
        return self._decision is None and self._failure is None

    def _expire(self) -> None:
        """Decide by the clock when the deadline has passed (half-open windows)."""
        if self._decision is not None or self._failure is not None or self._deadline is None:
            return
        late = self._clock.monotonic() - self._deadline
        if late < 0:
            return
        if self.policy.mode == "implied":
            self._decide(Decision.IMPLIED, late)
        else:
            self._decide(Decision.DECLINED_TIMEOUT, late)

    def _decide(self, decision: Decision, late: float = 0.0) -> None:
        self._decision = decision
        self.timeline.decided_at = self._clock.wall() - late
        self._changed.set()
