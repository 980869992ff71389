"""A FastAGI peer that goes silent or answers nonsense: the session still ends, audited.

Asterisk answers every command; a peer that stops (a wedged PBX thread, a
port scanner that sent an environment block) must not hold a session, and
its consent ends as a failure under the recording policy, in the audit log.
The read timeout is real time (a fraction of a second here); nothing asserts
how long anything took.
"""

from __future__ import annotations

import pytest

from agi.gate import MAX_DIGITS
from callrec.clock import ManualClock
from callrec.config import Config
from tests.agi.agiclient import Caller, ChannelModel
from tests.agi.conftest import AuditRecorder, consent_session, with_consent

READ_TIMEOUT = 0.3
# get the linkedid, ANSWER, STREAM FILE the disclosure, WAIT FOR DIGIT
FIRST_COMMAND, DISCLOSURE, FIRST_WAIT = 1, 3, 4


@pytest.mark.parametrize(
    "command", [FIRST_COMMAND, DISCLOSURE, FIRST_WAIT], ids=["after-env", "in-prompt", "in-wait"]
)
async def test_a_peer_that_goes_silent_is_ended_as_a_failed_consent_and_audited(
    config: Config, clock: ManualClock, audit: AuditRecorder, command: int
) -> None:
    model = ChannelModel(caller=Caller(stall_at_command=command))
    client, model, consent = await consent_session(
        config, clock, audit, model=model, read_timeout=READ_TIMEOUT
    )
    assert client.closed_by_server
    # Nothing was answered after the stall, so nothing more was sent either.
    assert len(model.commands) == command
    [(record, _personal)] = audit.lines
    assert record["decision"] is None
    assert record["reason"] == "disclosure-failed:agi error"
    assert consent.ledger.get("1795915759.31") is None


@pytest.mark.parametrize("result", [1, 0x7F, 0x10FFFF, 10**17])
async def test_wait_for_digit_results_that_are_no_dtmf_key_are_no_digit(
    config: Config, clock: ManualClock, audit: AuditRecorder, result: int
) -> None:
    model = ChannelModel(caller=Caller(wait_answer=(result, 0.25)))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_CONSENT"] == "implied"
    [(record, _personal)] = audit.lines
    assert record["evidence"]["digits"] == []


async def test_a_peer_answering_every_wait_with_a_digit_cannot_grow_the_evidence(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    # 2 s of grace, a "5" every millisecond: about 2,000 answers.
    model = ChannelModel(caller=Caller(wait_answer=(ord("5"), 0.001)))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    waits = [argv for argv in model.commands if argv[:2] == ["WAIT", "FOR"]]
    assert len(waits) > 10 * MAX_DIGITS
    assert model.variables["CALLREC_CONSENT"] == "implied"
    [(record, _personal)] = audit.lines
    assert [d["digit"] for d in record["evidence"]["digits"]] == ["5"] * MAX_DIGITS


async def test_the_opt_out_digit_still_counts_after_the_evidence_is_full(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    config = with_consent(config, mode="explicit", timeout=10.0)
    # Explicit mode: "5" decides nothing; "1" (accept) after MAX_DIGITS of them still does.
    model = ChannelModel(caller=Caller(wait_answer=(ord("5"), 0.01), digit="1", digit_at=8.0))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    [(record, _personal)] = audit.lines
    assert len(record["evidence"]["digits"]) == MAX_DIGITS
    assert model.variables["CALLREC_CONSENT"] == "declined-timeout"
