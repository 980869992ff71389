"""Every consent outcome through a real FastAGI socket, as Asterisk would drive it.

The fake Asterisk advances a ManualClock by the time the channel spends in
each command (the prompt playing, WAIT FOR DIGIT timing out), so no test
sleeps; the outcome is what the dialplan sees (channel variables) and what
the audit log gets.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from agi.gate import ConsentLedger, ConsentRecord
from callrec.clock import ManualClock
from callrec.config import Config
from callrec.consent import Decision
from callrec.evidence import Evidence, pseudonymise
from tests.agi.agiclient import Caller, ChannelModel
from tests.agi.conftest import (
    PSEUDONYM_KEY,
    AuditRecorder,
    consent_session,
    sound_name,
    with_consent,
)


def verbs(model: ChannelModel) -> list[str]:
    return [" ".join(w for w in argv if w.isupper() and " " not in w) for argv in model.commands]


async def test_caller_who_stays_gives_implied_consent(
    config: Config, clock: ManualClock, audit: AuditRecorder, sounds: Path
) -> None:
    client, model, consent = await consent_session(config, clock, audit)
    assert model.variables["CALLREC_CONSENT"] == "implied"
    assert re.fullmatch(r"[0-9a-f]{32}", model.variables["CALLREC_ID"])
    assert model.variables["CALLREC_CONNECT"] == "yes"
    assert "CALLREC_ERROR" not in model.variables
    assert model.answered
    assert ["STREAM", "FILE", sound_name(sounds, "en"), "2"] in model.commands
    assert ["WAIT", "FOR", "DIGIT", "2000"] in model.commands
    assert client.closed_by_server
    (record, personal), *_ = audit.lines
    assert record["decision"] == "implied"
    assert record["call_id"] == model.variables["CALLREC_ID"]
    evidence = record["evidence"]
    assert evidence["frontend"] == "agi"
    assert evidence["caller"] == pseudonymise("+4930123456", PSEUDONYM_KEY)
    assert evidence["dialled"] == "100"
    assert evidence["prompt"]["id"] == "en/callrec/disclosure"
    assert len(evidence["prompt"]["sha256"]) == 64
    assert personal == {"caller_number": "+4930123456", "caller_name": "sipp"}
    assert "+4930123456" not in repr(record)
    ledger = consent.ledger.get("1795915759.31")
    assert ledger is not None
    assert ledger.decision is Decision.IMPLIED


@pytest.mark.parametrize("hangup_at", [0.0, 1.0, 2.99, 3.5, 4.99])
async def test_hangup_during_disclosure_or_grace_declines(
    config: Config, clock: ManualClock, audit: AuditRecorder, hangup_at: float
) -> None:
    model = ChannelModel(caller=Caller(hangup_at=hangup_at))
    _, model, consent = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_CONSENT"] == "declined-hangup"
    assert model.variables["CALLREC_CONNECT"] == "no"
    assert audit.lines[0][0]["decision"] == "declined-hangup"
    assert audit.lines[0][0]["evidence"]["times"]["hangup"] is not None
    assert consent.ledger.get("1795915759.31") is not None


async def test_hangup_after_the_grace_is_still_implied(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    model = ChannelModel(caller=Caller(hangup_at=5.0))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_CONSENT"] == "implied"


@pytest.mark.parametrize("digit_at", [0.5, 2.9, 3.0, 4.5])
async def test_opt_out_digit_in_disclosure_or_grace_declines_but_connects(
    config: Config, clock: ManualClock, audit: AuditRecorder, digit_at: float
) -> None:
    model = ChannelModel(caller=Caller(digit="2", digit_at=digit_at))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_CONSENT"] == "declined-dtmf"
    assert model.variables["CALLREC_CONNECT"] == "yes"
    digits = audit.lines[0][0]["evidence"]["digits"]
    assert [d["digit"] for d in digits] == ["2"]


async def test_opt_out_with_hangup_policy_tells_the_dialplan_not_to_connect(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    config = with_consent(config, on_decline="hangup")
    model = ChannelModel(caller=Caller(digit="2", digit_at=1.0))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_CONSENT"] == "declined-dtmf"
    assert model.variables["CALLREC_CONNECT"] == "no"


async def test_other_digits_do_not_decide(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    model = ChannelModel(caller=Caller(digit="5", digit_at=3.5))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_CONSENT"] == "implied"


async def test_explicit_mode_accept_digit_grants(
    config: Config, clock: ManualClock, audit: AuditRecorder, sounds: Path
) -> None:
    config = with_consent(config, mode="explicit", timeout=10.0)
    model = ChannelModel(caller=Caller(digit="1", digit_at=7.0))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_CONSENT"] == "granted-dtmf"
    assert ["STREAM", "FILE", sound_name(sounds, "en"), "21"] in model.commands


async def test_explicit_mode_without_a_digit_times_out(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    config = with_consent(config, mode="explicit", timeout=12.0)
    _, model, _ = await consent_session(config, clock, audit)
    assert model.variables["CALLREC_CONSENT"] == "declined-timeout"
    waits = [argv[-1] for argv in model.commands if argv[:2] == ["WAIT", "FOR"]]
    assert waits == ["5000", "5000", "2000"]


async def test_missing_prompt_file_is_an_error_not_a_consent(
    config: Config, clock: ManualClock, audit: AuditRecorder, sounds: Path
) -> None:
    (sounds / "en" / "callrec" / "disclosure.wav").unlink()
    _, model, consent = await consent_session(config, clock, audit)
    assert "CALLREC_CONSENT" not in model.variables
    assert model.variables["CALLREC_ERROR"] == "disclosure-failed:prompt file missing"
    assert model.variables["CALLREC_CONNECT"] == "yes"
    assert not any(argv[:2] == ["STREAM", "FILE"] for argv in model.commands)
    assert audit.lines[0][0]["reason"] == "disclosure-failed:prompt file missing"
    assert audit.lines[0][0]["decision"] is None
    assert consent.ledger.get("1795915759.31") is None


async def test_prompt_asterisk_cannot_play_is_an_error_under_strict_policy(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    config = Config(
        prompts=config.prompts,
        consent=config.consent,
        recording=type(config.recording)(on_failure="strict"),
    )
    model = ChannelModel(sounds={"something-else": 1.0})
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_ERROR"] == "disclosure-failed:playback failed"
    assert model.variables["CALLREC_CONNECT"] == "no"
    assert ["CHANNEL", "STATUS"] in model.commands


@pytest.mark.parametrize(
    ("language", "played"), [("de", "de"), ("fr", "en"), ("../../../etc/passwd", "en")]
)
async def test_disclosure_follows_the_channel_language(
    config: Config,
    clock: ManualClock,
    audit: AuditRecorder,
    sounds: Path,
    language: str,
    played: str,
) -> None:
    _, model, _ = await consent_session(config, clock, audit, env={"agi_language": language})
    assert ["STREAM", "FILE", sound_name(sounds, played), "2"] in model.commands
    assert audit.lines[0][0]["evidence"]["language"] == played


@pytest.mark.parametrize(
    ("env", "dialled"),
    [
        ({"agi_extension": "s", "agi_dnid": "200"}, "200"),
        ({"agi_extension": "300", "agi_dnid": "200"}, "300"),
        ({"agi_arg_1": "400"}, "400"),
        ({"agi_arg_1": "../x", "agi_extension": "s", "agi_dnid": "unknown"}, ""),
    ],
)
async def test_dialled_number(
    config: Config,
    clock: ManualClock,
    audit: AuditRecorder,
    env: dict[str, str],
    dialled: str,
) -> None:
    await consent_session(config, clock, audit, env=env)
    assert audit.lines[0][0]["evidence"]["dialled"] == dialled


async def test_socket_closed_in_the_middle_of_the_disclosure(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    # Command 3 is STREAM FILE (after GET VARIABLE and ANSWER); Asterisk drops
    # the connection after 9 bytes of its reply.
    model = ChannelModel(caller=Caller(close_at_command=3, cut_bytes=9))
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.commands[2][:2] == ["STREAM", "FILE"]
    assert audit.lines[0][0]["decision"] == "declined-hangup"


async def test_asterisk_closing_the_socket_on_hangup_still_audits(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    model = ChannelModel(caller=Caller(hangup_at=1.0, exit_on_hangup=True))
    client, model, consent = await consent_session(config, clock, audit, model=model)
    assert not client.closed_by_server
    assert "CALLREC_CONSENT" not in model.variables  # nobody left to tell
    assert audit.lines[0][0]["decision"] == "declined-hangup"
    record = consent.ledger.get("1795915759.31")
    assert record is not None
    assert record.decision is Decision.DECLINED_HANGUP


async def test_channel_already_dead_before_answer(
    config: Config, clock: ManualClock, audit: AuditRecorder
) -> None:
    model = ChannelModel(dead=True)
    _, model, _ = await consent_session(config, clock, audit, model=model)
    assert model.variables["CALLREC_CONSENT"] == "declined-hangup"


HOSTILE = {
    "agi_callerid": "../../etc/passwd",
    "agi_calleridname": 'ctl\x01\x07\x1b[31mred\x7fend "quoted" \\ ' + "L" * 300,
    "agi_uniqueid": "1795915759.99",
}


async def test_hostile_caller_id_never_reaches_log_or_audit_in_clear(
    config: Config,
    clock: ManualClock,
    audit: AuditRecorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    _, model, _ = await consent_session(config, clock, audit, env=HOSTILE)
    assert model.variables["CALLREC_CONSENT"] == "implied"
    text = caplog.text
    assert "../../etc/passwd" not in text
    for control in "\x01\x07\x1b\x7f":
        assert control not in text
    assert "L" * 100 not in text
    record, personal = audit.lines[0]
    assert "passwd" not in repr(record)
    assert "\x1b" not in repr(record)
    assert personal["caller_name"] == HOSTILE["agi_calleridname"]
    assert record["evidence"]["caller"].startswith("p1:")


@pytest.mark.parametrize("uniqueid", ["", "../../x", "a" * 151, "id with space", "x\x1by"])
async def test_unusable_uniqueid_is_refused_with_an_error(
    config: Config, clock: ManualClock, audit: AuditRecorder, uniqueid: str
) -> None:
    _, model, consent = await consent_session(config, clock, audit, env={"agi_uniqueid": uniqueid})
    assert model.variables == {"CALLREC_ERROR": "bad-channel"}
    assert len(consent.ledger) == 0


def test_ledger_forgets_by_age_and_by_size() -> None:
    clock = ManualClock()
    ledger = ConsentLedger(size=3, ttl=60.0, clock=clock)
    evidence = Evidence("1.0", "1.0", "p1:x", "100", "en")
    for n in range(4):
        ledger.add(ConsentRecord(f"c{n}", f"1.{n}", Decision.IMPLIED, evidence))
    assert ledger.get("1.0") is None
    assert ledger.get("1.3") is not None
    clock.advance(61.0)
    assert ledger.get("1.3") is None
    assert len(ledger) == 0
