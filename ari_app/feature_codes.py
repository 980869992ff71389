"""The agent's feature codes (``*1`` pauses, ``*2`` resumes): a pure decision table.

Fed the agent's digits one by one (Asterisk reports a digit when it ends),
it says what each one does. Only the code that fits the recording's state
counts: the pause code while recording, the resume code while paused (so
one code for both toggles). The first digit of the pause code starts a hold
(:meth:`callrec.pausing.PauseControl.hold`): what is heard until the code
completes is kept out of the file, or released into it when the code breaks
off or times out. The caller's digits never come here.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

# Seconds between two digits of one code before it counts as abandoned;
# what a hold kept meanwhile goes into the recording.
DIGIT_TIMEOUT = 2.0


class Step(Enum):
    """What one digit (or the digit timeout) asks of the recording."""

    HOLD = "hold"  # the pause code's first digit: keep the audio out until it is decided
    RELEASE = "release"  # the pause code broke off: the held audio goes in after all
    PAUSE = "pause"
    RESUME = "resume"


@dataclass
class FeatureCodes:
    """The agent's typing, matched against ``pause_code`` and ``resume_code`` ("" off)."""

    pause_code: str
    resume_code: str
    typed: str = ""

    def digit(self, digit: str, paused: bool) -> list[Step]:
        """The steps ``digit`` asks for (none when it is part of no code)."""
        code = self.resume_code if paused else self.pause_code
        steps = []
        typed = self.typed + digit
        if not code.startswith(typed):
            steps = self.reset(paused)
            typed = digit
        if not code or not code.startswith(typed):
            return steps
        self.typed = typed
        if typed == code:
            self.typed = ""
            steps.append(Step.RESUME if paused else Step.PAUSE)
        elif len(typed) == 1 and not paused:
            steps.append(Step.HOLD)
        return steps

    @property
    def typing(self) -> bool:
        """A code is begun but not complete (the digit timeout runs)."""
        return bool(self.typed)

    def reset(self, paused: bool) -> list[Step]:
        """Forget a code begun (timed out, or the state changed meanwhile)."""
        begun, self.typed = bool(self.typed), ""
        return [Step.RELEASE] if begun and not paused else []
