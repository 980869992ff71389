"""Every consent path of the Stasis app with SIP callers on a real Asterisk.

Each call is a sipp caller playing speech-like RTP from a pcap; the harness
of ``callrec testcall`` then checks what a data-protection officer would: the
audit line (decision, how the call ended), the recording present or absent,
verifying, its length, and its audio following what the caller sent.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from callrec.decode import decode_recording
from callrec.testcall.harness import run_scenario
from callrec.testcall.scenarios import Scenario

from .conftest import (
    AWAY_EXTEN,
    BUSY_EXTEN,
    STASIS_EXTEN,
    MakeRecorder,
    Recorder,
    assert_ok,
    line_of,
)

pytestmark = pytest.mark.realpbx


async def test_a_caller_who_stays_is_recorded_with_evidence(recorder: Recorder) -> None:
    report = await run_scenario(recorder.scenarios()["stay"], recorder.options(STASIS_EXTEN))
    assert_ok(report)
    line = line_of(report)
    assert (line["event"], line["end"], line["destination"]) == (
        "call",
        "caller-hangup",
        "answered",
    )
    times = line["evidence"]["times"]
    assert times["prompt_end"] is not None and times["recording_start"] > times["prompt_end"]
    assert line["evidence"]["prompt_failure"] is None
    # The caller number is only in the sealed personal fields.
    assert report.caller not in recorder.audit_path.read_text(encoding="utf-8")


async def test_hanging_up_during_the_disclosure_records_nothing(recorder: Recorder) -> None:
    report = await run_scenario(recorder.scenarios()["hangup"], recorder.options(STASIS_EXTEN))
    assert_ok(report)
    line = line_of(report)
    assert line["durations"].get("bridged") is None and line["destination"] is None
    evidence = line["evidence"]
    times = evidence["times"]
    assert times["prompt_start"] is not None and times["prompt_end"] is None
    # Asterisk ends the cut playback as "failed" (trace 02): the evidence
    # records a hang-up that interrupted the disclosure, not a broken prompt.
    assert (line["event"], line["decision"], line["reason"]) == ("call", "declined-hangup", None)
    assert evidence["prompt_interrupted_by"] == "caller-hangup"
    assert evidence["prompt_failure"] is None and times["prompt_failed"] is None
    assert times["prompt_start"] <= times["prompt_interrupted"] <= times["hangup"]
    assert recorder.sealed() == [] and recorder.open_recordings() == []


async def test_the_opt_out_digit_connects_the_call_unrecorded(recorder: Recorder) -> None:
    report = await run_scenario(recorder.scenarios()["optout"], recorder.options(STASIS_EXTEN))
    assert_ok(report)
    line = line_of(report)
    assert [d["digit"] for d in line["evidence"]["digits"]] == ["2"]
    assert line["destination"] == "answered" and line["durations"]["bridged"] > 1.0
    assert recorder.sealed() == []


def _explicit(recorder: Recorder, name: str) -> Scenario:
    disclosure = recorder.disclosure_seconds()
    timeout = recorder.config.consent.timeout
    if name == "granted":
        return Scenario(
            "granted",
            "explicit mode: the accept digit grants consent and the call is recorded",
            disclosure + 1.0 + 3.0,
            "granted-dtmf",
            True,
            digit_at=disclosure + 0.5,
            digit="1",
        )
    return Scenario(
        "timeout",
        "explicit mode: no digit until the timeout refuses, the call goes on unrecorded",
        disclosure + timeout + 3.0,
        "declined-timeout",
        False,
    )


@pytest.mark.parametrize("name", ["granted", "timeout"])
async def test_explicit_consent(make_recorder: MakeRecorder, name: str) -> None:
    recorder = await make_recorder(mode="explicit")
    report = await run_scenario(_explicit(recorder, name), recorder.options(STASIS_EXTEN))
    assert_ok(report)
    line = line_of(report)
    assert line["destination"] == "answered" and line["durations"]["bridged"] > 1.0
    if name == "granted":
        assert [d["digit"] for d in line["evidence"]["digits"]] == ["1"]
    else:
        assert recorder.sealed() == []


@pytest.mark.parametrize(
    ("exten", "outcome"),
    [(BUSY_EXTEN, "User busy"), (AWAY_EXTEN, "User alerting, no answer")],
    ids=["busy", "unanswered"],
)
async def test_an_unavailable_destination_ends_the_call_unrecorded(
    recorder: Recorder, exten: str, outcome: str
) -> None:
    # The caller would stay for a minute: the PBX must end the call.
    waiting = replace(
        recorder.scenarios(exten)["stay"], hold=60.0, expect_recording=False, name="unavailable"
    )
    report = await run_scenario(waiting, recorder.options(exten))
    assert_ok(report)
    line = line_of(report)
    assert (line["end"], line["destination"]) == ("destination-unavailable", outcome)
    assert report.sipp is not None and report.sipp.remote_hangup
    assert line["durations"]["call"] < 30.0
    assert recorder.sealed() == []


async def test_slin16_media_is_recorded_at_16_khz(make_recorder: MakeRecorder) -> None:
    recorder = await make_recorder(media_format="slin16")
    report = await run_scenario(recorder.scenarios()["stay"], recorder.options(STASIS_EXTEN))
    assert_ok(report)
    (path,) = recorder.sealed()
    decoded = decode_recording(path, recorder.keys)
    assert decoded.rate == 16000 and decoded.channels == 1
    assert line_of(report)["recording_id"] in path.name


@pytest.mark.parametrize("policy", ["strict", "best-effort"])
async def test_a_recording_that_cannot_start_follows_the_failure_policy(
    make_recorder: MakeRecorder, policy: str
) -> None:
    recorder = await make_recorder(on_failure=policy)
    # The spool goes away under the running recorder (an unmounted disk).
    incoming = recorder.spool / "incoming"
    incoming.rmdir()
    incoming.write_text("a file where the spool should be\n")
    stay = recorder.scenarios()["stay"]
    caller = replace(stay, hold=stay.hold + 4.0, expect_recording=False)
    report = await run_scenario(caller, recorder.options(STASIS_EXTEN))
    assert_ok(report)
    line = line_of(report)
    assert line["event"] == "failure" and "spool" in line["reason"]
    assert line["recording_id"] is None
    assert report.sipp is not None
    if policy == "strict":
        # Refused: never connected, told why, hung up by the PBX.
        assert (line["end"], line["destination"]) == ("recording-unavailable", None)
        assert line["durations"].get("bridged") is None
        assert report.sipp.remote_hangup
    else:
        assert (line["end"], line["destination"]) == ("caller-hangup", "answered")
        assert line["durations"]["bridged"] > 3.0
        assert not report.sipp.remote_hangup
    assert incoming.read_text() == "a file where the spool should be\n"
