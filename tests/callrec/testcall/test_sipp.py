"""The shipped sipp scenario runs against a sipp UAS standing in for a PBX."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callrec.media.signals import speech_like
from callrec.testcall import harness, sipp
from callrec.testcall.scenarios import builtin_scenarios

from .conftest import need_sipp

SCENARIOS = builtin_scenarios(
    disclosure=0.5,
    grace=0.2,
    hangup_at=0.4,
    digit_at=0.3,
    optout_digit="2",
    talk=0.6,
    long_talk=1.0,
)


def test_template_fills_every_field() -> None:
    text = sipp.render(
        {"from": "<sip:991@[local_ip]>", "pcap": "/x.pcap", "hold_ms": "100", "name": "stay"}
    )
    assert "{{" not in text and "sip:991@" in text and 'play_pcap_audio="/x.pcap"' in text
    with pytest.raises(sipp.SippError, match="unfilled"):
        sipp.render({"caller": "991"})


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_every_scenario_places_a_call_in_sipp(
    name: str, sipp_uas: str, tmp_path: Path
) -> None:
    need_sipp()
    scenario = SCENARIOS[name]
    harness.build_pcap(scenario, speech_like(2.0), tmp_path / "caller.pcap")
    call = sipp.SippCall(
        target=sipp_uas,
        exten="100",
        caller=harness.test_caller_id(),
        pcap=tmp_path / "caller.pcap",
        hold=scenario.hold,
        name=name,
        timeout=20,
    )
    result = await sipp.place_call(call, tmp_path)
    assert result.returncode == 0, result.log_tail
    assert result.answered
    assert not result.remote_hangup
    sent = (tmp_path / f"{name}.xml").read_text()
    assert f"sip:{call.caller}@" in sent
    # In-dialog requests go to the callee's Contact, as a PBX requires.
    log = next(tmp_path.glob(f"{name}_*_messages.log")).read_text()
    requests = [line for line in log.splitlines() if line.startswith(("ACK ", "BYE "))]
    assert requests
    assert all(line.split()[1].startswith("sip:") for line in requests), requests


@pytest.mark.parametrize(("password", "answered"), [("s3cret", True), ("wrong", False)])
async def test_digest_challenge_is_answered_with_the_given_credentials(
    password: str, answered: bool, sipp_uas_auth: str, tmp_path: Path
) -> None:
    need_sipp()
    scenario = SCENARIOS["stay"]
    harness.build_pcap(scenario, speech_like(1.0), tmp_path / "caller.pcap")
    call = sipp.SippCall(
        target=sipp_uas_auth,
        exten="100",
        caller=harness.test_caller_id(),
        pcap=tmp_path / "caller.pcap",
        hold=0.5,
        name="stay",
        user="tester",
        password=password,
        timeout=10,
    )
    result = await sipp.place_call(call, tmp_path)
    assert result.answered is answered
    assert (result.returncode == 0) is answered, result.log_tail


def test_caller_ids_are_unique_digits() -> None:
    ids = {harness.test_caller_id() for _ in range(200)}
    assert len(ids) == 200 and all(i.isdigit() and len(i) == 14 for i in ids)


def test_caller_audio_repeats_to_the_call_length() -> None:
    audio = np.arange(100, dtype=np.int16)
    out = harness.caller_audio(audio, 0.05)
    assert len(out) == 400 and out[150] == 50
