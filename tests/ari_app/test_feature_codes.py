"""The agent's feature codes as a decision table: which digit holds, pauses, resumes, releases."""

from __future__ import annotations

import pytest

from ari_app.feature_codes import FeatureCodes, Step

H, R, P, U = Step.HOLD, Step.RELEASE, Step.PAUSE, Step.RESUME


def typed(codes: FeatureCodes, digits: str, paused: bool = False) -> list[list[Step]]:
    return [codes.digit(d, paused) for d in digits]


@pytest.mark.parametrize(
    ("digits", "steps"),
    [
        ("*1", [[H], [P]]),  # the pause starts at the first digit
        ("5*1", [[], [H], [P]]),  # a digit before the code is nobody's business
        ("*5", [[H], [R]]),  # broken off: the held audio goes in
        ("**1", [[H], [R, H], [P]]),  # a second * starts the code again
        ("*2", [[H], [R]]),  # the resume code means nothing while recording
    ],
)
def test_while_recording(digits: str, steps: list[list[Step]]) -> None:
    assert typed(FeatureCodes("*1", "*2"), digits) == steps


@pytest.mark.parametrize(
    ("digits", "steps"),
    [
        ("*2", [[], [U]]),  # nothing is held while paused: nothing is recorded
        ("*1", [[], []]),
        ("1*2", [[], [], [U]]),
    ],
)
def test_while_paused(digits: str, steps: list[list[Step]]) -> None:
    assert typed(FeatureCodes("*1", "*2"), digits, paused=True) == steps


def test_one_code_toggles_and_one_digit_codes_need_no_hold() -> None:
    codes = FeatureCodes("#", "#")
    assert codes.digit("#", paused=False) == [P]
    assert codes.digit("#", paused=True) == [U]


def test_codes_off_and_a_timeout() -> None:
    off = FeatureCodes("", "")
    assert typed(off, "*1*2") == [[], [], [], []]
    codes = FeatureCodes("*1", "")
    assert codes.digit("*", paused=False) == [H]
    begun = codes.typing
    assert codes.reset(paused=False) == [R]  # the digit timeout
    assert (begun, codes.typing) == (True, False)
    assert codes.reset(paused=False) == []
    assert typed(codes, "*2", paused=True) == [[], []]  # no resume code: only auto-resume
