"""Recording a dialplan call by snoop, through the ARI simulator, following trace 05.

The rig is the production wiring: the Stasis app (events, router, recorder,
spool, audit) with :class:`agi.fastagi.AgiService` as its extra service. The
call is a channel running in the simulator's dialplan (originated without an
app, as in trace 05); a fake Asterisk runs the AGI scripts for it over TCP.
When the dialplan hangs up, the snoop leaves Stasis (no ChannelDestroyed), RTP
stops, and the tap removes its bridge and seals the recording.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from agi.fastagi import AgiService
from ari_app.app import App
from ari_app.demo import SIM_PASSWORD, SIM_USER, write_config, write_keys
from ari_app.demo import write_prompts as write_demo_prompts
from callrec.ari.sim import AriSimulator, DialplanStep, EndpointBehaviour
from callrec.clock import Clock, SystemClock
from callrec.config import AgiConfig, Config, load_config
from callrec.crypto.keys import PrivateKey
from callrec.crypto.limits import MAX_RECORDING_SECONDS
from callrec.decode import decode_recording
from callrec.media.layout import ChannelMode
from callrec.media.signals import speech_like
from tests.agi.agiclient import ChannelModel, run_session

DISCLOSURE = 0.4
GRACE = 0.2
CALL_SECONDS = 4.0
RATE = 8000


@dataclass
class Rig:
    sim: AriSimulator
    app: App
    service: AgiService
    out: Path
    keys: list[PrivateKey]
    sounds: Path
    calls: list[str] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return self.service.config

    def audit(self, stage: str | None = None) -> list[dict[str, Any]]:
        path = self.config.privacy.audit_log
        if not path.exists():
            return []
        from callrec.audit import read_audit

        return [r for r in read_audit(path) if stage is None or r.get("stage") == stage]

    def sealed(self) -> list[Path]:
        return sorted(self.config.recording.spool.glob("[0-9]*/*/*/*.crec"))

    async def dialplan_call(self, seconds: float = CALL_SECONDS) -> str:
        """A call that runs in the dialplan, not in Stasis (trace 05)."""
        exten = f"talk{len(self.calls)}"
        steps = [DialplanStep("Answer"), DialplanStep("Wait", "", seconds), DialplanStep("Hangup")]
        self.sim.add_dialplan("dialplan-test", exten, steps)
        assert self.app.ctx is not None
        query: dict[str, str | int] = {
            "endpoint": "PJSIP/agent",
            "context": "dialplan-test",
            "extension": exten,
            "priority": 1,
            "callerId": "Dialplan Test <+4930123456>",
        }
        body = await self.app.ctx.client.request("POST", "/channels", query)
        self.calls.append(body["id"])
        return str(body["id"])

    async def agi(
        self,
        script: str,
        uniqueid: str,
        env: dict[str, str] | None = None,
        *,
        linkedid: str | None = None,
        digit_at: float | None = None,
    ) -> ChannelModel:
        """Run one AGI script for the channel, as Asterisk would."""
        sounds = self.config.prompts.sounds_dir
        model = ChannelModel(
            sounds={str(sounds / "en" / "callrec" / "disclosure"): DISCLOSURE}, realtime=True
        )
        if digit_at is not None:
            model.caller.digit, model.caller.digit_at = "2", digit_at
        model.variables["CHANNEL(linkedid)"] = linkedid or uniqueid
        base = {"agi_network_script": script, "agi_uniqueid": uniqueid, "agi_extension": "100"}
        _, done = await run_session(self.service.port, {**base, **(env or {})}, model)
        return done


async def wait_until(probe: Any, within: float = 15.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not (value := probe()):
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.05)
    return value


async def make_rig(
    tmp_path: Path,
    *,
    record_after_consent: bool = False,
    channels: ChannelMode = "mixed",
    clock: Clock | None = None,
) -> Rig:
    sounds = tmp_path / "sounds"
    write_demo_prompts(
        sounds, {"disclosure": DISCLOSURE, "not-available": 0.3, "recording-unavailable": 0.3}
    )
    _, key_path, _ = write_keys(tmp_path)
    voice = tmp_path / "voice.wav"
    sf.write(str(voice), speech_like(20.0, seed=3), RATE, subtype="PCM_16")
    sim = AriSimulator(user=SIM_USER, password=SIM_PASSWORD, sounds_dir=sounds)
    await sim.start()
    sim.add_endpoint(
        "PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.05, audio=voice)
    )
    path = write_config(tmp_path, sim.url, sounds_dir=sounds, destinations={}, grace=GRACE)
    config = load_config(path)
    agi = AgiConfig(host="127.0.0.1", port=0, record_after_consent=record_after_consent)
    recording = dataclasses.replace(config.recording, channels=channels)
    config = dataclasses.replace(config, agi=agi, recording=recording)
    app = App(config) if clock is None else App(config, clock=clock)
    service = AgiService(config, lambda: app.ctx, sweep_interval=0.3)
    app.extra_services.append(service)
    await app.startup()
    await asyncio.wait_for(app.connected.wait(), 10)
    return Rig(sim, app, service, tmp_path, [PrivateKey.load(key_path)], sounds)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    rig = await make_rig(tmp_path)
    try:
        yield rig
    finally:
        await rig.app.shutdown()
        await rig.sim.stop()


@dataclass
class Decoded:
    audio_seconds: float
    pauses: list[float]
    resumes: list[float]
    metadata: list[dict[str, Any]]
    verdict: str


def decode(path: Path, keys: list[PrivateKey]) -> Decoded:
    d = decode_recording(path, keys)
    at = {kind: [e["at"] for e in d.events if e["event"] == kind] for kind in ("pause", "resume")}
    return Decoded(len(d.samples) / d.rate, at["pause"], at["resume"], d.metadata, str(d.verdict))


async def test_consent_then_record_until_the_dialplan_hangs_up(rig: Rig) -> None:
    cid = await rig.dialplan_call()
    consent = await rig.agi("consent", cid)
    assert consent.variables["CALLREC_CONSENT"] == "implied"
    record = await rig.agi("record", cid)
    recording_id = record.variables["CALLREC_RECORDING"]
    assert recording_id
    assert "CALLREC_ERROR" not in record.variables
    # The call goes on in the dialplan: the snoop sits in the tap's own bridge.
    assert rig.sim.channel(cid) is not None
    (line,) = await wait_until(lambda: rig.audit("recording"), 15)
    assert line["event"] == "call"
    assert line["recording_id"] == recording_id
    assert line["reason"] == "hangup"
    assert line["call_id"] == consent.variables["CALLREC_ID"]
    assert line["decision"] == "implied"
    assert line["segments"] >= 1
    (sealed,) = rig.sealed()
    assert line["sealed"] is True
    assert Path(line["path"]) == sealed
    assert line["packets"]["received"] > 50
    assert line["packets"]["foreign"] == 0
    decoded = decode(sealed, rig.keys)
    assert decoded.verdict == "complete"
    assert abs(line["durations"]["audio"] - decoded.audio_seconds) < 0.1
    # Recording ran from /record until the dialplan's Hangup.
    assert 1.5 < decoded.audio_seconds < CALL_SECONDS + 0.5
    assert decoded.metadata[0]["kind"] == "consent-evidence"
    assert decoded.metadata[0]["frontend"] == "agi"
    assert decoded.metadata[0]["personal"]["caller_number"] == "+4930123456"
    # Trace 05: the bridge left behind is removed by the tap; nothing of ours remains.
    await wait_until(lambda: not rig.sim.bridges, 5)
    assert not [c for c in rig.sim.channels if c.kind in ("snoop", "external")]
    assert not rig.service.recordings.active


async def test_record_without_a_decision_of_this_server_is_refused(rig: Rig) -> None:
    cid = await rig.dialplan_call()
    # A CALLREC_CONSENT set by hand does not count.
    model = await rig.agi("record", cid, {"agi_arg_1": "implied"})
    assert model.variables["CALLREC_ERROR"] == "no-consent"
    assert "CALLREC_RECORDING" not in model.variables
    assert not any(argv[:2] == ["STREAM", "FILE"] for argv in model.commands)
    assert not rig.sim.bridges
    assert not rig.service.recordings.active


async def test_declined_consent_cannot_be_recorded(rig: Rig) -> None:
    cid = await rig.dialplan_call()
    done = await rig.agi("consent", cid, digit_at=0.1)
    assert done.variables["CALLREC_CONSENT"] == "declined-dtmf"
    record = await rig.agi("record", cid)
    assert record.variables["CALLREC_ERROR"] == "no-consent"
    assert not rig.sim.bridges


HOSTILE = {
    "agi_callerid": "../../etc/passwd",
    "agi_calleridname": 'Robert\\"); DROP TABLE calls;-- \x1b[31m\x07' + "N" * 200,
}


async def test_stop_seals_while_the_call_goes_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    cid = await rig.dialplan_call(seconds=8.0)
    await rig.agi("consent", cid, HOSTILE)
    await rig.agi("record", cid)
    await asyncio.sleep(1.0)
    stop = await rig.agi("stop", cid)
    assert stop.variables["CALLREC_RECORDING"] == ""
    (line,) = rig.audit("recording")
    assert line["reason"] == "stopped"
    assert rig.sim.channel(cid) is not None
    (sealed,) = rig.sealed()
    assert 0.5 < decode(sealed, rig.keys).audio_seconds < 2.5
    again = await rig.agi("stop", cid)
    assert again.variables["CALLREC_ERROR"] == "not-recording"
    # The hostile caller id is in the encrypted evidence only.
    audit_text = rig.config.privacy.audit_log.read_text()
    for text in (audit_text, caplog.text):
        assert "passwd" not in text
        assert "DROP TABLE" not in text
        assert "\x1b" not in text
    evidence = decode(sealed, rig.keys).metadata[0]
    assert evidence["personal"]["caller_name"] == HOSTILE["agi_calleridname"]


async def test_pause_and_resume_leave_frames_with_their_times(rig: Rig) -> None:
    cid = await rig.dialplan_call(seconds=5.0)
    await rig.agi("consent", cid)
    await rig.agi("record", cid)
    await asyncio.sleep(0.8)
    paused = await rig.agi("pause", cid)
    assert paused.variables["CALLREC_PAUSED"] == "yes"
    await asyncio.sleep(1.0)
    # From another leg of the same call (an agent's feature code): found by linkedid.
    resumed = await rig.agi("resume", "1795915999.1", linkedid=cid)
    assert resumed.variables["CALLREC_PAUSED"] == "no"
    (line,) = await wait_until(lambda: rig.audit("recording"), 15)
    (sealed,) = rig.sealed()
    decoded = decode(sealed, rig.keys)
    assert len(decoded.pauses) == 1
    assert len(decoded.resumes) == 1
    assert 0.8 < decoded.resumes[0] - decoded.pauses[0] < 2.0
    assert line["reason"] == "hangup"
    # The file and the audit line say the dialplan asked.
    [pause] = decoded.metadata[-1]["pauses"]
    assert (pause["source"], pause["resumed_by"]) == ("agi", "agi")
    assert pause["end"] - pause["start"] == decoded.resumes[0] - decoded.pauses[0]
    assert line["pauses"] == 1
    assert line["durations"]["paused"] == pause["end"] - pause["start"]


async def test_hangup_while_the_events_websocket_is_down_is_still_sealed(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    cid = await rig.dialplan_call(seconds=20.0)
    await rig.agi("consent", cid)
    await rig.agi("record", cid)
    await asyncio.sleep(0.5)
    # The snoop's StasisEnd goes nowhere, and is not replayed later (trace 07).
    await rig.sim.drop_websockets()
    rig.sim.hangup_caller(cid)
    (line,) = await wait_until(lambda: rig.audit("recording"), 10)
    assert line["reason"] == "hangup"
    assert "snoop gone without a StasisEnd" in caplog.text
    (sealed,) = rig.sealed()
    assert decode(sealed, rig.keys).verdict == "complete"
    await wait_until(lambda: not rig.sim.bridges, 5)


async def test_record_after_consent_by_config(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path, record_after_consent=True)
    try:
        cid = await rig.dialplan_call(seconds=3.0)
        consent = await rig.agi("consent", cid)
        assert consent.variables["CALLREC_CONSENT"] == "implied"
        recording_id = consent.variables["CALLREC_RECORDING"]
        assert recording_id
        again = await rig.agi("record", cid)
        assert again.variables["CALLREC_RECORDING"] == recording_id
        (line,) = await wait_until(lambda: rig.audit("recording"), 15)
        assert line["recording_id"] == consent.variables["CALLREC_RECORDING"]
        # One audit line for the whole call, as in the Stasis app.
        assert [x for x in rig.audit() if x["event"] != "service"] == [line]
        assert line["decision"] == "implied"
        assert line["call_id"] == consent.variables["CALLREC_ID"]
        declined = await rig.dialplan_call(seconds=3.0)
        refused = await rig.agi("consent", declined, {"agi_arg_1": "100"}, digit_at=0.1)
        assert refused.variables["CALLREC_CONSENT"] == "declined-dtmf"
        assert "CALLREC_RECORDING" not in refused.variables
        (consent_line,) = rig.audit("consent")
        assert consent_line["decision"] == "declined-dtmf"
    finally:
        await rig.app.shutdown()
        await rig.sim.stop()


async def test_record_of_a_channel_the_pbx_does_not_have(rig: Rig) -> None:
    # Consent decided for a channel id the PBX does not know: the snoop gets 404.
    consent = await rig.agi("consent", "1795915000.404")
    assert consent.variables["CALLREC_CONSENT"] == "implied"
    record = await rig.agi("record", "1795915000.404")
    assert record.variables["CALLREC_ERROR"] == "recording-unavailable"
    assert record.variables["CALLREC_CONNECT"] == "yes"  # best-effort
    (line,) = rig.audit("recording")
    assert line["event"] == "failure"
    assert "404 Channel not found" in line["reason"]
    assert not rig.service.recordings.active
    assert not rig.sim.bridges
    # What the tap had opened is sealed with the evidence and no audio.
    (sealed,) = rig.sealed()
    assert line["recording_id"] == sealed.stem
    decoded = decode(sealed, rig.keys)
    assert decoded.audio_seconds == 0
    assert decoded.metadata[-1]["reason"] == "recording-failed"


async def test_shutdown_seals_open_recordings_and_leaves_the_call(rig: Rig) -> None:
    cid = await rig.dialplan_call(seconds=10.0)
    await rig.agi("consent", cid)
    await rig.agi("record", cid)
    await asyncio.sleep(0.8)
    await rig.app.shutdown()
    (line,) = rig.audit("recording")
    assert line["reason"] == "shutdown"
    assert rig.sim.channel(cid) is not None
    (sealed,) = rig.sealed()
    assert decode(sealed, rig.keys).verdict == "complete"
    assert np.isfinite(line["durations"]["audio"])


async def test_lost_media_is_audited_and_best_effort_keeps_recording(rig: Rig) -> None:
    """RTP stops for seconds while the dialplan call goes on: a failure line
    now, and the recording still seals with the loss marked inside it."""
    assert rig.app.ctx is not None
    rig.app.ctx.media_timeout = 0.8
    rig.sim.rtp_faults("all", drop=range(30, 130))  # packets 0.6 s .. 2.6 s
    cid = await rig.dialplan_call(seconds=5.0)
    await rig.agi("consent", cid)
    record = await rig.agi("record", cid)
    assert record.variables["CALLREC_RECORDING"]
    (failure,) = await wait_until(lambda: [r for r in rig.audit() if r["event"] == "failure"], 10)
    assert failure["reason"] == "media stream lost"
    (line,) = await wait_until(
        lambda: [r for r in rig.audit("recording") if r["event"] == "call"], 15
    )
    assert line["sealed"] is True
    decoded = decode(Path(line["path"]), rig.keys)
    assert decoded.verdict == "complete"
    assert any(m.get("type") == "media-lost" for m in decoded.metadata)
    # The dropped packets come back as a gap of their true length.
    assert line["durations"]["gaps"] == pytest.approx(2.0, abs=0.1)


async def test_record_in_stereo_puts_the_channel_left_and_what_it_hears_right(
    tmp_path: Path,
) -> None:
    # The dialplan channel talks (its endpoint's voice) and, in no bridge,
    # hears nothing: left follows its voice, right is silence. Both snoops
    # and their bridges go when the dialplan hangs up.
    rig = await make_rig(tmp_path, channels="stereo")
    try:
        cid = await rig.dialplan_call()
        await rig.agi("consent", cid)
        record = await rig.agi("record", cid)
        assert record.variables["CALLREC_RECORDING"]
        (line,) = await wait_until(lambda: rig.audit("recording"), 15)
        channels = line["evidence"]["channels"]
        assert channels["heard_snoop"] not in (None, channels["snoop"])
        (sealed,) = rig.sealed()
        decoded = decode_recording(sealed, rig.keys)
        assert decoded.channels == 2 and decoded.metadata[-1]["channels"] == "stereo"
        left, right = decoded.samples[:, 0], decoded.samples[:, 1]
        assert np.abs(left.astype(np.int32)).mean() > 500
        assert not right.any()
        assert line["packets"]["received"] > 2 * 50  # both sides, over a second each
        await wait_until(lambda: not rig.sim.bridges, 5)
        assert not [c for c in rig.sim.channels if c.kind in ("snoop", "unicast")]
    finally:
        await rig.app.shutdown()
        await rig.sim.stop()


class _WallAhead(SystemClock):
    """Real time, but the test can move the wall clock on (a week passes at once)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def wall(self) -> float:
        return super().wall() + self.ahead


async def test_a_recording_cut_by_the_writer_says_why_in_its_audit_line(tmp_path: Path) -> None:
    """Paused, and resumed a week later: the writer refuses (7-day limit) and the
    recording ends sealed; its audit line names that cause, not only 'recording-failed'."""
    clock = _WallAhead()
    rig = await make_rig(tmp_path, clock=clock)
    try:
        cid = await rig.dialplan_call(seconds=8.0)
        await rig.agi("consent", cid)
        await rig.agi("record", cid)
        await asyncio.sleep(0.8)
        await rig.agi("pause", cid)
        clock.ahead = MAX_RECORDING_SECONDS
        await rig.agi("resume", cid)
        (line,) = await wait_until(lambda: rig.audit("recording"), 15)
        assert line["event"] == "failure"
        assert "longer than 7 days" in line["reason"], line["reason"]
        assert rig.sim.channel(cid) is not None  # sealed while the call goes on
        (sealed,) = rig.sealed()
        summary = decode(sealed, rig.keys).metadata[-1]
        assert "longer than 7 days" in summary["failure"]
    finally:
        await rig.app.shutdown()
        await rig.sim.stop()
