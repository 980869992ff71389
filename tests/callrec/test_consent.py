"""The consent table of docs/DESIGN.md, driven by a manual clock (no test sleeps)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from callrec.clock import ManualClock
from callrec.config import Config, ConsentConfig
from callrec.consent import (
    ConsentGate,
    ConsentPolicy,
    Decision,
    DisclosureFailed,
    Interruption,
    records,
)
from callrec.errors import RecordingUnavailable

PROMPT = 5.0  # seconds of disclosure audio in these tests
IMPLIED = ConsentPolicy(mode="implied", grace=2.0)
EXPLICIT = ConsentPolicy(mode="explicit", grace=2.0, timeout=10.0)


async def settle() -> None:
    """Let the waiting decision task run after the clock moved."""
    for _ in range(5):
        await asyncio.sleep(0)


class Call:
    """A caller, a gate and a task awaiting its decision."""

    def __init__(self, policy: ConsentPolicy) -> None:
        self.clock = ManualClock()
        self.gate = ConsentGate(policy, self.clock)
        self.task = asyncio.ensure_future(self.gate.decision())

    async def at(self, t: float, action: Callable[[], None] | None = None) -> None:
        """Move the clock to ``t`` seconds after answer, then do ``action``."""
        self.clock.advance(t - self.clock.monotonic())
        await settle()
        if action is not None:
            action()
        await settle()

    async def disclosure(self) -> None:
        self.gate.answered()
        await self.at(0.5, self.gate.prompt_started)
        await self.at(0.5 + PROMPT, self.gate.prompt_finished)

    async def result(self) -> Decision:
        await settle()
        assert self.task.done(), "no decision yet"
        return self.task.result()


END = 0.5 + PROMPT  # disclosure end, seconds after answer


async def test_staying_past_disclosure_and_grace_is_implied_consent() -> None:
    call = Call(IMPLIED)
    await call.disclosure()
    await call.at(END + 1.999)
    assert not call.task.done()
    assert call.gate.decided is None
    await call.at(END + 2.0)
    assert await call.result() is Decision.IMPLIED
    t = call.gate.timeline
    assert t.answered_at is not None
    assert t.prompt_started_at == t.answered_at + 0.5
    assert t.prompt_finished_at == t.answered_at + END
    assert t.decided_at == t.answered_at + END + 2.0


async def test_decision_time_is_the_grace_end_even_when_noticed_late() -> None:
    call = Call(IMPLIED)
    await call.disclosure()
    call.clock.advance(30.0)
    assert await call.task is Decision.IMPLIED
    t = call.gate.timeline
    assert t.answered_at is not None
    assert t.decided_at == t.answered_at + END + 2.0


@pytest.mark.parametrize("when", [0.2, 0.5, 3.0, END, END + 1.0, END + 1.999])
async def test_hangup_during_disclosure_or_grace_declines(when: float) -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    if when >= 0.5:
        await call.at(0.5, call.gate.prompt_started)
    if when >= END:
        await call.at(END, call.gate.prompt_finished)
    await call.at(when, call.gate.hangup)
    assert await call.result() is Decision.DECLINED_HANGUP
    assert call.gate.timeline.hangup_at == call.gate.timeline.decided_at
    assert not records(Decision.DECLINED_HANGUP)


async def test_hangup_exactly_at_grace_end_comes_after_implied() -> None:
    # Half-open window: the grace is over at END + grace. The hang-up is
    # handled before the waiting task runs, and still loses.
    call = Call(IMPLIED)
    await call.disclosure()
    call.clock.advance(END + 2.0 - call.clock.monotonic())
    call.gate.hangup()
    assert await call.result() is Decision.IMPLIED
    t = call.gate.timeline
    assert t.hangup_at == t.decided_at


async def test_hangup_after_the_decision_does_not_change_it() -> None:
    call = Call(IMPLIED)
    await call.disclosure()
    await call.at(END + 2.5)
    await call.at(60.0, call.gate.hangup)
    assert await call.result() is Decision.IMPLIED
    assert call.gate.timeline.hangup_at is not None


@pytest.mark.parametrize("when", [0.7, 3.0, END + 0.5])
async def test_opt_out_digit_before_the_decision(when: float) -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    await call.at(0.5, call.gate.prompt_started)
    if when > END:
        await call.at(END, call.gate.prompt_finished)
    await call.at(when, lambda: call.gate.digit("2"))
    assert await call.result() is Decision.DECLINED_DTMF
    # The front end stops the playback; its end is still recorded.
    await call.at(when + 0.1, call.gate.prompt_finished)
    await call.at(END + 10, call.gate.hangup)
    assert call.gate.decided is Decision.DECLINED_DTMF
    assert [d for d, _ in call.gate.timeline.digits] == ["2"]


async def test_opt_out_before_the_disclosure_starts_also_counts() -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    await call.at(0.1, lambda: call.gate.digit("2"))
    assert await call.result() is Decision.DECLINED_DTMF


async def test_other_digits_are_ignored_but_recorded() -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    await call.at(0.5, call.gate.prompt_started)
    await call.at(1.0, lambda: call.gate.digit("5"))
    await call.at(2.0, lambda: call.gate.digit("1"))  # accept digit: no meaning when implied
    await call.at(END, call.gate.prompt_finished)
    await call.at(END + 1.0, lambda: call.gate.digit("#"))
    await call.at(END + 2.0)
    assert await call.result() is Decision.IMPLIED
    t = call.gate.timeline
    assert t.answered_at is not None
    assert t.digits == [("5", t.answered_at + 1.0), ("1", t.answered_at + 2.0),
                        ("#", t.answered_at + END + 1.0)]  # fmt: skip


async def test_digit_after_the_decision_is_recorded_and_changes_nothing() -> None:
    call = Call(IMPLIED)
    await call.disclosure()
    await call.at(END + 3.0, lambda: call.gate.digit("2"))
    assert await call.result() is Decision.IMPLIED
    assert [d for d, _ in call.gate.timeline.digits] == ["2"]


@pytest.mark.parametrize("when", [0.6, 3.0, END, END + 9.9])
async def test_explicit_accept_during_or_after_the_disclosure(when: float) -> None:
    call = Call(EXPLICIT)
    call.gate.answered()
    await call.at(0.5, call.gate.prompt_started)
    if when >= END:
        await call.at(END, call.gate.prompt_finished)
    await call.at(when, lambda: call.gate.digit("1"))
    assert await call.result() is Decision.GRANTED_DTMF
    assert records(Decision.GRANTED_DTMF)


async def test_explicit_silence_until_timeout_declines() -> None:
    call = Call(EXPLICIT)
    await call.disclosure()
    await call.at(END + 2.5)  # past the grace: explicit mode waits for the digit
    assert not call.task.done()
    await call.at(END + 10.0)
    assert await call.result() is Decision.DECLINED_TIMEOUT
    t = call.gate.timeline
    assert t.answered_at is not None
    assert t.decided_at == t.answered_at + END + 10.0


async def test_explicit_accept_exactly_at_timeout_is_too_late() -> None:
    call = Call(EXPLICIT)
    await call.disclosure()
    call.clock.advance(END + 10.0 - call.clock.monotonic())
    call.gate.digit("1")
    assert await call.result() is Decision.DECLINED_TIMEOUT
    assert [d for d, _ in call.gate.timeline.digits] == ["1"]


async def test_explicit_opt_out_digit_declines() -> None:
    call = Call(EXPLICIT)
    await call.disclosure()
    await call.at(END + 1.0, lambda: call.gate.digit("2"))
    assert await call.result() is Decision.DECLINED_DTMF


async def test_explicit_accept_before_the_disclosure_starts_is_ignored() -> None:
    call = Call(EXPLICIT)
    call.gate.answered()
    await call.at(0.2, lambda: call.gate.digit("1"))
    assert not call.task.done()
    await call.at(0.5, call.gate.prompt_started)
    await call.at(END, call.gate.prompt_finished)
    await call.at(END + 10.0)
    assert await call.result() is Decision.DECLINED_TIMEOUT


async def test_explicit_hangup_while_waiting_for_the_digit() -> None:
    call = Call(EXPLICIT)
    await call.disclosure()
    await call.at(END + 5.0, call.gate.hangup)
    assert await call.result() is Decision.DECLINED_HANGUP


async def test_zero_grace_decides_when_the_disclosure_ends() -> None:
    call = Call(ConsentPolicy(grace=0.0))
    await call.disclosure()
    assert await call.result() is Decision.IMPLIED


async def test_disclosure_that_fails_to_play_means_nobody_consented() -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    await call.at(0.3, lambda: call.gate.prompt_failed("sound file not found"))
    assert call.task.done()
    with pytest.raises(DisclosureFailed) as err:
        call.task.result()
    assert isinstance(err.value, RecordingUnavailable)
    assert str(err.value) == "disclosure not played: sound file not found"
    assert call.gate.decided is None
    call.gate.hangup()
    call.gate.digit("1")
    assert call.gate.decided is None
    t = call.gate.timeline
    assert t.prompt_failure == "sound file not found"
    assert t.prompt_failed_at is not None


async def test_prompt_failure_after_a_decision_keeps_the_decision() -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    await call.at(0.5, call.gate.prompt_started)
    await call.at(1.0, lambda: call.gate.digit("2"))
    await call.at(1.1, lambda: call.gate.prompt_failed("stopped"))
    assert await call.result() is Decision.DECLINED_DTMF
    t = call.gate.timeline
    # The digit stopped the prompt; its "failed" end is that stop, not a failure.
    assert (t.prompt_interrupted_by, t.prompt_failure) == (Interruption.DIGIT, None)
    assert t.answered_at is not None
    assert t.prompt_interrupted_at == t.answered_at + 1.0


async def test_a_hang_up_while_the_prompt_plays_interrupts_it_and_is_no_failure() -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    await call.at(0.5, call.gate.prompt_started)
    await call.at(2.0, call.gate.hangup)
    # Asterisk then reports the playback as failed (trace 02).
    await call.at(2.0, lambda: call.gate.prompt_failed("playback failed"))
    assert await call.result() is Decision.DECLINED_HANGUP
    t = call.gate.timeline
    assert t.prompt_interrupted_by is Interruption.CALLER_HANGUP
    assert t.answered_at is not None
    assert t.prompt_interrupted_at == t.hangup_at == t.answered_at + 2.0
    assert (t.prompt_failure, t.prompt_failed_at, t.prompt_finished_at) == (None, None, None)


class TickingClock(ManualClock):
    """A clock that moves 1 ms at every read, as a busy real one can between two reads."""

    def wall(self) -> float:
        self.advance(0.001)
        return super().wall()


async def test_the_hang_up_that_cuts_the_prompt_is_one_instant_in_the_evidence() -> None:
    # Seen on the real PBX: prompt_interrupted 1 ms after the hang-up that caused it.
    gate = ConsentGate(IMPLIED, TickingClock())
    gate.answered()
    gate.prompt_started()
    gate.hangup()
    t = gate.timeline
    assert t.prompt_interrupted_by is Interruption.CALLER_HANGUP
    assert t.prompt_started_at is not None and t.prompt_interrupted_at is not None
    assert t.prompt_started_at < t.prompt_interrupted_at == t.hangup_at


@pytest.mark.parametrize("hangup_at", [0.2, END + 1.0])
async def test_a_hang_up_when_no_prompt_plays_interrupts_nothing(hangup_at: float) -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    if hangup_at > END:
        await call.disclosure()
    await call.at(hangup_at, call.gate.hangup)
    assert await call.result() is Decision.DECLINED_HANGUP
    t = call.gate.timeline
    assert (t.prompt_interrupted_at, t.prompt_interrupted_by) == (None, None)


async def test_a_digit_that_does_not_decide_does_not_interrupt() -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    await call.at(0.5, call.gate.prompt_started)
    await call.at(1.0, lambda: call.gate.digit("1"))  # accept digit: ignored in implied mode
    await call.at(1.5, lambda: call.gate.digit("7"))
    assert call.gate.timeline.prompt_interrupted_by is None
    await call.at(END, call.gate.prompt_finished)
    await call.at(END + 2.0)
    assert await call.result() is Decision.IMPLIED


async def test_the_accept_digit_interrupts_the_prompt_in_explicit_mode() -> None:
    call = Call(EXPLICIT)
    call.gate.answered()
    await call.at(0.5, call.gate.prompt_started)
    await call.at(3.0, lambda: call.gate.digit("1"))
    assert await call.result() is Decision.GRANTED_DTMF
    assert call.gate.timeline.prompt_interrupted_by is Interruption.DIGIT


async def test_a_failure_reported_before_a_hang_up_stays_a_failure() -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    await call.at(0.5, call.gate.prompt_started)
    await call.at(0.5, lambda: call.gate.prompt_failed("playback failed"))
    await call.at(1.0, call.gate.hangup)
    with pytest.raises(DisclosureFailed):
        await call.result()
    t = call.gate.timeline
    assert (t.prompt_failure, t.prompt_interrupted_by) == ("playback failed", None)


async def test_only_the_first_cut_counts() -> None:
    call = Call(IMPLIED)
    call.gate.answered()
    call.gate.prompt_interrupted(Interruption.CALL_ENDED)  # not started: nothing to cut
    assert call.gate.timeline.prompt_interrupted_at is None
    await call.at(0.5, call.gate.prompt_started)
    await call.at(1.0, lambda: call.gate.prompt_interrupted(Interruption.CALL_ENDED))
    await call.at(1.5, call.gate.hangup)
    t = call.gate.timeline
    assert t.prompt_interrupted_by is Interruption.CALL_ENDED
    assert t.answered_at is not None
    assert t.prompt_interrupted_at == t.answered_at + 1.0


async def test_several_waiters_get_the_same_decision() -> None:
    call = Call(IMPLIED)
    second = asyncio.ensure_future(call.gate.decision())
    await call.disclosure()
    await call.at(END + 2.0)
    assert await call.task is Decision.IMPLIED
    assert await second is Decision.IMPLIED


def test_what_each_decision_does_to_the_call() -> None:
    cont = ConsentPolicy(on_decline="continue")
    hang = ConsentPolicy(on_decline="hangup")
    table = {
        Decision.IMPLIED: (True, True, True),
        Decision.GRANTED_DTMF: (True, True, True),
        Decision.DECLINED_DTMF: (False, True, False),
        Decision.DECLINED_TIMEOUT: (False, True, False),
        Decision.DECLINED_HANGUP: (False, False, False),
    }
    for decision, (recorded, connects_cont, connects_hang) in table.items():
        assert records(decision) is recorded, decision
        assert cont.connects(decision) is connects_cont, decision
        assert hang.connects(decision) is connects_hang, decision
    assert [str(d) for d in Decision] == [
        "implied", "declined-hangup", "declined-dtmf", "granted-dtmf", "declined-timeout"
    ]  # fmt: skip


def test_the_configured_consent_is_the_policy() -> None:
    consent = ConsentConfig(mode="explicit", grace=1.5, optout_digit="*", accept_digit="#")
    policy: ConsentPolicy = Config(consent=consent).consent
    assert policy == ConsentPolicy("explicit", 1.5, "*", "#", 10.0, "continue")
    assert policy.snapshot()["optout_digit"] == "*"
