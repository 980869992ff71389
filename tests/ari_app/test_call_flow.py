"""Each consent outcome end to end: simulator -> app -> spool and audit log."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from callrec.ari.sim import CallerScenario, EndpointBehaviour
from callrec.audio import envelope_correlation
from callrec.config import Config, ConsentMode, DeclineAction, Destination
from callrec.decode import decode_recording
from callrec.failure_policy import FailurePolicy
from callrec.recording import verify
from tests.ari_app.conftest import DISCLOSURE, GRACE, RATE, Rig, noise, playbacks, wait_until

PACKET = 0.02


def _seconds_between(times: dict[str, Any], start: str, end: str) -> float:
    return (
        datetime.fromisoformat(times[end]) - datetime.fromisoformat(times[start])
    ).total_seconds()


def _played(rig: Rig, channel_id: str) -> list[str]:
    return [playback["media_uri"] for playback in playbacks(rig, channel_id)]


async def test_implied_consent_is_recorded_verified_and_audited(running: Rig) -> None:
    rig = running
    caller = rig.sim.place_call(
        CallerScenario(
            exten="100",
            caller_number="+4930123456",
            caller_name="Alice Example",
            audio=rig.voice_path,
            hangup_after=DISCLOSURE + GRACE + 6.0,
        )
    )
    line = await rig.wait_audit(caller)
    assert line["event"] == "call"
    assert line["decision"] == "implied"
    assert line["end"] == "caller-hangup"
    evidence = line["evidence"]
    assert evidence["prompt"]["id"] == "en/callrec/disclosure"
    assert len(evidence["prompt"]["sha256"]) == 64
    assert evidence["caller"].startswith("p1:")
    raw = rig.audit_path.read_text(encoding="utf-8")
    assert "4930123456" not in raw and "Alice" not in raw

    path = Path(line["path"])
    assert rig.sealed() == [path]
    assert list((rig.spool / "incoming").iterdir()) == []
    result = verify(path, rig.keys)
    assert str(result.verdict) == "complete"
    assert result.segments == line["segments"]
    sent = rig.sim.rtp_stats(evidence["channels"]["external_media"])
    assert abs(result.audio_seconds - sent.packets_sent * PACKET) <= PACKET

    decoded = decode_recording(path, rig.keys)
    first, last = decoded.metadata[0], decoded.metadata[-1]
    assert first["kind"] == "consent-evidence"
    assert first["decision"] == "implied"
    assert first["personal"]["caller_number"] == "+4930123456"
    assert last["type"] == "summary" and last["reason"] == "caller-hangup"
    assert decoded.gaps == 0

    # The recording starts when the bridge does: that far into the caller's voice.
    offset = _seconds_between(evidence["times"], "answer", "recording_start")
    start = max(0, int(offset * RATE) - RATE // 2)
    source = rig.voice[start : start + len(decoded.samples) + RATE]
    assert envelope_correlation(source, decoded.samples, RATE) >= 0.6
    control = noise(len(decoded.samples) / RATE)
    assert envelope_correlation(control, decoded.samples, RATE) < 0.4


async def test_hanging_up_during_the_disclosure_records_nothing(running: Rig) -> None:
    rig = running
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE / 2)
    )
    line = await rig.wait_audit(caller)
    assert line["decision"] == "declined-hangup"
    assert line["recording_id"] is None
    assert "destination" not in line["evidence"]["channels"]
    assert rig.sealed() == []
    assert not any(e["type"] == "Dial" for e in rig.sim.events)
    times = line["evidence"]["times"]
    assert times["prompt_start"] is not None and times["hangup"] is not None


async def test_opt_out_digit_stops_the_disclosure_and_connects_unrecorded(running: Rig) -> None:
    rig = running
    caller = rig.sim.place_call(
        CallerScenario(
            exten="100", audio=rig.voice_path, dtmf=[(0.2, "2")], hangup_after=DISCLOSURE + 1.5
        )
    )
    line = await rig.wait_audit(caller)
    assert line["decision"] == "declined-dtmf"
    assert line["recording_id"] is None
    assert line["durations"].get("bridged") is not None
    evidence = line["evidence"]
    assert [d["digit"] for d in evidence["digits"]] == ["2"]
    assert _seconds_between(evidence["times"], "prompt_start", "prompt_end") < DISCLOSURE
    assert rig.sealed() == []
    assert not any(ch.kind in ("snoop", "unicast") for ch in rig.sim.channels)


def _unavailable_lines(caplog: pytest.LogCaptureFixture, caller: str) -> list[str]:
    """The app's log lines saying why the destination was not connected."""
    prefix = f"[{caller}] destination unavailable"
    return [m for m in (r.getMessage() for r in caplog.records) if m.startswith(prefix)]


async def test_busy_destination_hears_not_available_and_is_hung_up(
    running: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ari_app")
    rig = running
    caller = rig.sim.place_call(CallerScenario(exten="200", audio=rig.voice_path))
    line = await rig.wait_audit(caller)
    assert line["decision"] == "implied"
    assert line["end"] == "destination-unavailable"
    assert line["destination"] == "User busy"
    assert _unavailable_lines(caplog, caller) == [
        f"[{caller}] destination unavailable (busy): User busy"
    ]
    assert line["recording_id"] is None
    assert _played(rig, caller) == ["sound:callrec/disclosure", "sound:callrec/not-available"]
    await wait_until(lambda: rig.sim.channel(caller) is None)
    assert rig.sealed() == []


async def test_unanswered_destination_times_out_into_not_available(
    running: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """Trace 04a: only a ChannelDestroyed (19/480) after the ring timeout."""
    caplog.set_level(logging.INFO, logger="ari_app")
    rig = running
    config = rig.config
    assert rig.app is not None
    assert rig.app.ctx is not None
    dests = {**config.destinations, "300": Destination("PJSIP/away", 1)}
    rig.app.ctx.config = replace(config, destinations=dests)
    caller = rig.sim.place_call(CallerScenario(exten="300", audio=rig.voice_path))
    line = await rig.wait_audit(caller)
    assert line["decision"] == "implied"
    assert line["end"] == "destination-unavailable"
    assert line["destination"] == "User alerting, no answer"
    expected = f"[{caller}] destination unavailable (no-answer): User alerting, no answer"
    assert _unavailable_lines(caplog, caller) == [expected]
    assert line["recording_id"] is None
    assert _played(rig, caller) == ["sound:callrec/disclosure", "sound:callrec/not-available"]
    await wait_until(lambda: rig.sim.channel(caller) is None)
    assert rig.sealed() == []


async def test_destination_hanging_up_ends_the_call_and_seals(running: Rig) -> None:
    rig = running
    rig.sim.add_endpoint("PJSIP/short", EndpointBehaviour(kind="answer", hangup_after=1.0))
    config = rig.config
    dests = {**config.destinations, "400": Destination("PJSIP/short", 5)}
    assert rig.app is not None
    assert rig.app.ctx is not None
    rig.app.ctx.config = replace(config, destinations=dests)
    caller = rig.sim.place_call(CallerScenario(exten="400", audio=rig.voice_path))
    line = await rig.wait_audit(caller)
    assert line["end"] == "destination-hangup"
    assert str(verify(Path(line["path"]), rig.keys).verdict) == "complete"
    # The caller was hung up by the app, and nothing of the tap is left behind.
    await wait_until(lambda: not rig.sim.channels and not rig.sim.bridges)


def _consent(
    rig: Rig, *, on_decline: DeclineAction = "continue", mode: ConsentMode = "implied"
) -> Config:
    config = rig.config
    consent = replace(config.consent, mode=mode, timeout=0.4, on_decline=on_decline)
    return replace(config, consent=consent)


async def test_explicit_mode_accept_digit_grants_and_records(rig: Rig) -> None:
    await rig.start_app(_consent(rig, mode="explicit"))
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, dtmf=[(0.3, "1")], hangup_after=2.0)
    )
    line = await rig.wait_audit(caller)
    assert line["decision"] == "granted-dtmf"
    assert str(verify(Path(line["path"]), rig.keys).verdict) == "complete"


async def test_explicit_mode_without_a_digit_connects_unrecorded(rig: Rig) -> None:
    await rig.start_app(_consent(rig, mode="explicit"))
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + 1.5)
    )
    line = await rig.wait_audit(caller)
    assert line["decision"] == "declined-timeout"
    assert line["recording_id"] is None and rig.sealed() == []
    assert line["durations"].get("bridged") is not None


async def test_declining_with_on_decline_hangup_ends_the_call(rig: Rig) -> None:
    await rig.start_app(_consent(rig, on_decline="hangup"))
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, dtmf=[(0.2, "2")], hangup_after=10.0)
    )
    line = await rig.wait_audit(caller)
    assert line["decision"] == "declined-dtmf" and line["end"] == "declined"
    assert not any(e["type"] == "Dial" for e in rig.sim.events)
    await wait_until(lambda: rig.sim.channel(caller) is None)


@pytest.mark.parametrize("policy", ["best-effort", "strict"])
async def test_a_disclosure_that_cannot_be_played_never_records(
    rig: Rig, policy: FailurePolicy
) -> None:
    config = rig.config
    config = replace(config, recording=replace(config.recording, on_failure=policy))
    (rig.out / "sounds" / "en" / "callrec" / "disclosure.wav").unlink()
    await rig.start_app(config)
    caller = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=2.0)
    )
    line = await rig.wait_audit(caller)
    assert line["event"] == "failure" and "disclosure" in line["reason"]
    assert line["decision"] is None
    assert line["recording_id"] is None and rig.sealed() == []
    dialled = any(e["type"] == "Dial" for e in rig.sim.events)
    assert dialled == (policy == "best-effort")
