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
    text = sipp.render({"caller": "991", "pcap": "/x.pcap", "hold_ms": "100", "name": "stay"})
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


def test_caller_ids_are_unique_digits() -> None:
    ids = {harness.test_caller_id() for _ in range(200)}
    assert len(ids) == 200 and all(i.isdigit() and len(i) == 14 for i in ids)


def test_caller_audio_repeats_to_the_call_length() -> None:
    audio = np.arange(100, dtype=np.int16)
    out = harness.caller_audio(audio, 0.05)
    assert len(out) == 400 and out[150] == 50
