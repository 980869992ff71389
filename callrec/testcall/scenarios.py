"""The test-call scenarios: what the caller does and what must follow."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scenario:
    """One scripted caller and the outcome a correct PBX setup produces.

    Times are seconds after the call is answered. ``expect_decision`` is the
    consent decision the audit line must carry; ``expect_recording`` whether a
    sealed recording must exist.
    """

    name: str
    proves: str
    hold: float
    expect_decision: str
    expect_recording: bool
    digit_at: float | None = None
    digit: str = "2"


def builtin_scenarios(
    *,
    disclosure: float,
    grace: float,
    hangup_at: float,
    digit_at: float,
    optout_digit: str,
    talk: float,
    long_talk: float,
) -> dict[str, Scenario]:
    """The shipped scenarios, timed for a disclosure of ``disclosure`` seconds."""
    after = disclosure + grace
    scenarios = [
        Scenario(
            "stay",
            "a caller who stays is recorded (implied consent), encrypted, with evidence",
            after + talk,
            "implied",
            True,
        ),
        Scenario(
            "hangup",
            "hanging up during the disclosure means no: nothing is recorded",
            hangup_at,
            "declined-hangup",
            False,
        ),
        Scenario(
            "optout",
            "the opt-out digit refuses recording and the call still goes through",
            after + talk,
            "declined-dtmf",
            False,
            digit_at=digit_at,
            digit=optout_digit,
        ),
        Scenario(
            "long",
            "a long call is recorded whole: duration and audio match what was sent",
            after + long_talk,
            "implied",
            True,
        ),
    ]
    return {s.name: s for s in scenarios}
