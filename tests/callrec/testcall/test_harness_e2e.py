"""`callrec testcall` end to end: sipp calls a sipp UAS standing in for the PBX,
while the same caller (same number, audio, timing, digit) reaches the real
Stasis app through the ARI simulator, which records it. The harness must then
find each call's audit line by the sealed caller number and judge it.

This is what CI can run without Asterisk; against a real PBX the placer is
sipp alone (``callrec testcall --target``).
"""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from callrec.ari.sim import CallerScenario
from callrec.media.signals import speech_like
from callrec.testcall import harness, sipp
from callrec.testcall.report import table, write_junit
from callrec.testcall.scenarios import Scenario, builtin_scenarios
from tests.ari_app.conftest import DISCLOSURE, GRACE, Rig, wait_until

from .conftest import need_sipp

SCENARIOS = builtin_scenarios(
    disclosure=DISCLOSURE, grace=GRACE, hangup_at=0.3, digit_at=0.3, optout_digit="2", talk=2.0,
    long_talk=4.0,
)  # fmt: skip


@pytest.fixture
async def pbx(running: Rig) -> Rig:
    """The ARI simulator with the real Stasis app (tests/ari_app's rig)."""
    return running


def options(pbx: Rig, target: str, wait: float = 15) -> harness.Options:
    return harness.Options(
        target=target,
        exten="100",
        spool=pbx.spool,
        audit_log=pbx.audit_path,
        keys=pbx.keys,
        audio=OPTIONS_AUDIO,
        wait=wait,
    )


def twin_placer(rig: Rig, audio_rate: int = 8000) -> harness.Placer:
    """sipp against the UAS, and the same caller into the simulator's Stasis app."""

    async def place(call: sipp.SippCall, scenario: Scenario, workdir: Path) -> sipp.SippResult:
        audio = harness.caller_audio(OPTIONS_AUDIO, scenario.hold)
        dtmf = [] if scenario.digit_at is None else [(scenario.digit_at, scenario.digit)]
        channel = rig.sim.place_call(
            CallerScenario(
                exten=call.exten,
                caller_name="callrec test",
                caller_number=call.caller,
                audio=audio,
                audio_rate=audio_rate,
                hangup_after=scenario.hold,
                dtmf=dtmf,
            )
        )
        result = await sipp.place_call(call, workdir)
        await wait_until(lambda: rig.sim.channel(channel) is None, within=20)
        return result

    return place


OPTIONS_AUDIO = speech_like(8.0)


@pytest.mark.parametrize("name", ["stay", "hangup", "optout"])
async def test_harness_judges_each_scenario_from_audit_and_spool(
    name: str, pbx: Rig, sipp_uas: str, tmp_path: Path
) -> None:
    need_sipp()
    opts = options(pbx, sipp_uas, wait=15)
    report = await harness.run_scenario(SCENARIOS[name], opts, twin_placer(pbx))
    failed = [c for c in report.checks if not c.ok]
    assert not failed, table([report])
    names = {c.name for c in report.checks}
    if SCENARIOS[name].expect_recording:
        assert {"verifies", "duration fits the call", "audio follows what was sent"} <= names
    else:
        assert "no recording" in names
    junit = tmp_path / "junit.xml"
    write_junit([report], junit)
    suite = ET.parse(junit).getroot()  # noqa: S314 (our own file)
    assert (suite.get("tests"), suite.get("failures")) == ("1", "0")


async def test_harness_fails_a_call_whose_expectation_is_wrong(pbx: Rig, sipp_uas: str) -> None:
    """A PBX that records a caller who should not be recorded must fail the run."""
    need_sipp()
    wrong = Scenario(
        "stay", "claims no recording", SCENARIOS["stay"].hold, "declined-hangup", False
    )
    opts = options(pbx, sipp_uas, wait=15)
    report = await harness.run_scenario(wrong, opts, twin_placer(pbx))
    assert not report.ok
    failed = {c.name for c in report.checks if not c.ok}
    assert failed == {"decision", "no recording"}


async def test_no_audit_line_is_a_failure_not_a_hang(pbx: Rig, sipp_uas: str) -> None:
    need_sipp()
    opts = options(pbx, sipp_uas, wait=1.0)

    async def sipp_only(call: sipp.SippCall, scenario: Scenario, workdir: Path) -> sipp.SippResult:
        return await sipp.place_call(call, workdir)

    report = await harness.run_scenario(SCENARIOS["hangup"], opts, sipp_only)
    assert [c.name for c in report.checks if not c.ok] == ["audit line"]
    await asyncio.sleep(0)
