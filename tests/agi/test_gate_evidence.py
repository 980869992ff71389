"""The disclosure's evidence over AGI: heard, cut short (by what), or failed.

STREAM FILE answers ``result=-1`` both when the caller hangs up during the
prompt and when Asterisk cannot play the file; the gate tells them apart by
asking the channel (CHANNEL STATUS), and the audit line must say which.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from callrec.clock import ManualClock
from callrec.config import Config
from tests.agi.agiclient import Caller, ChannelModel
from tests.agi.conftest import PROMPT_SECONDS, AuditRecorder, consent_session


def _disclosure(record: dict[str, Any]) -> dict[str, Any]:
    """The disclosure's part of the evidence, times as seconds after the answer."""
    evidence = record["evidence"]
    times = evidence["times"]
    answer = datetime.fromisoformat(times["answer"])

    def since_answer(key: str) -> float | None:
        value = times[key]
        return None if value is None else (datetime.fromisoformat(value) - answer).total_seconds()

    return {
        "start": since_answer("prompt_start"),
        "end": since_answer("prompt_end"),
        "failed": since_answer("prompt_failed"),
        "interrupted": since_answer("prompt_interrupted"),
        "hangup": since_answer("hangup"),
        "by": evidence["prompt_interrupted_by"],
        "failure": evidence["prompt_failure"],
    }


def _stream_results(model: ChannelModel) -> list[list[str]]:
    return [argv for argv in model.commands if argv[:2] == ["STREAM", "FILE"]]


@pytest.mark.parametrize("exit_on_hangup", [False, True])
async def test_a_hang_up_during_stream_file_is_an_interruption_not_a_failure(
    config: Config, clock: ManualClock, audit: AuditRecorder, exit_on_hangup: bool
) -> None:
    model = ChannelModel(caller=Caller(hangup_at=1.0, exit_on_hangup=exit_on_hangup))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    record = audit.lines[0][0]
    assert (record["decision"], record["reason"]) == ("declined-hangup", None)
    d = _disclosure(record)
    assert (d["by"], d["failure"], d["failed"], d["end"]) == ("caller-hangup", None, None, None)
    assert d["start"] == 0.0 and d["interrupted"] == d["hangup"] == 1.0
    assert len(_stream_results(model)) == 1


async def test_a_hang_up_after_the_prompt_interrupts_nothing(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    model = ChannelModel(caller=Caller(hangup_at=PROMPT_SECONDS + 0.5))
    await consent_session(config, clock, audit, model=model)
    record = audit.lines[0][0]
    assert record["decision"] == "declined-hangup"
    d = _disclosure(record)
    assert (d["by"], d["interrupted"], d["failure"]) == (None, None, None)
    assert d["end"] == PROMPT_SECONDS and d["hangup"] == PROMPT_SECONDS + 0.5


@pytest.mark.parametrize(("digit_at", "by"), [(0.5, "digit"), (PROMPT_SECONDS + 1.0, None)])
async def test_the_opt_out_digit_interrupts_only_a_playing_prompt(
    config: Config, clock: ManualClock, audit: AuditRecorder, digit_at: float, by: str | None
) -> None:
    model = ChannelModel(caller=Caller(digit="2", digit_at=digit_at))
    await consent_session(config, clock, audit, model=model)
    record = audit.lines[0][0]
    assert record["decision"] == "declined-dtmf"
    d = _disclosure(record)
    assert (d["by"], d["failure"]) == (by, None)
    assert d["interrupted"] == (digit_at if by else None)


async def test_a_prompt_asterisk_cannot_play_on_a_live_channel_is_a_failure(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    model = ChannelModel(sounds={"something-else": 1.0})
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert ["CHANNEL", "STATUS"] in model.commands
    record = audit.lines[0][0]
    assert (record["decision"], record["reason"]) == (None, "disclosure-failed:playback failed")
    d = _disclosure(record)
    assert (d["failure"], d["by"], d["interrupted"]) == ("playback failed", None, None)
    assert d["failed"] is not None
