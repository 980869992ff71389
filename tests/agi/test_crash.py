"""``kill -9`` (or SIGTERM) of ``callrec serve`` while it records a dialplan call over FastAGI.

The call never depended on the recorder: it goes on in the dialplan. What a
data-protection officer checks afterwards: the next ``callrec serve`` took the
call over and recorded the rest of it in a continuation (both files verify,
the continuation's first record names the crashed one, the audio after the
restart is in it), the audit log says ``call-recovered`` and, at the hang-up,
the continuation's own line; a channel that went while no recorder ran is
``call-lost-by-crash``; a paused recording stays paused until the dialplan's
``/resume``. The recorder is a real child process against the simulator in
this process (as tests/ari_app/test_crash.py); a fake Asterisk runs the AGI
scripts over TCP (tests/agi/agiclient.py).
"""

from __future__ import annotations

import asyncio
import json
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Set
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callrec.ari.client import AriClient
from callrec.ari.sim import DialplanStep, EndpointBehaviour
from callrec.decode import Decoded, decode_recording
from callrec.recording import verify
from tests.agi.agiclient import ChannelModel, run_session
from tests.ari_app.conftest import DISCLOSURE, NotifySocket, Rig, serve, stop, wait_until
from tests.ari_app.conftest import notify_socket as notify_fixture  # noqa: F401 (fixture)
from tests.ari_app.conftest import rig as ari_rig  # noqa: F401 (fixture)
from tests.ari_app.test_crash import _recording_up
from tests.ari_app.test_pause_recovery import _tap_ids

pytestmark = pytest.mark.timeout(120)

CALLER_NUMBER = "+4930123456789"
PACKET = 0.02
RATE = 8000


@dataclass
class Call:
    channel: str  # the dialplan channel (its uniqueid)
    call_id: str  # CALLREC_ID
    first_id: str  # the recording the first recorder started
    old_tap: Set[str]  # its snoop, ExternalMedia and bridge


@pytest.fixture
def agi_rig(ari_rig: Rig, unused_tcp_port: int) -> Rig:  # noqa: F811 (tests/ari_app's rig)
    """The rig with FastAGI on a port of its own and an endpoint that talks."""
    rig, port = ari_rig, unused_tcp_port
    text = rig.config_path.read_text(encoding="utf-8")
    rig.config_path.write_text(
        text.replace('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:{port}"')
    )
    rig.sim.add_endpoint(
        "PJSIP/talker", EndpointBehaviour(kind="answer", answer_after=0.05, audio=rig.voice_path)
    )
    steps = [DialplanStep("Answer"), DialplanStep("Wait", "", 40.0), DialplanStep("Hangup")]
    rig.sim.add_dialplan("from-caller", "700", steps)
    return rig


@dataclass
class Recorders:
    """The ``callrec serve`` children of one test, one after the other."""

    rig: Rig
    notified: NotifySocket
    started: list[Process] = field(default_factory=list)

    async def start(self, *, ready: bool = True) -> None:
        self.started.append(await serve(self.rig, self.notified, ready=ready))

    async def end(self, how: str) -> None:
        """End the running one: ``kill-9`` (a crash) or ``sigterm`` (a restart)."""
        proc = self.started[-1]
        if how == "kill-9":
            proc.kill()
        else:
            proc.terminate()
            await self.notified.expect("STOPPING=1")
        await asyncio.wait_for(proc.wait(), 10)

    async def close(self) -> None:
        """Kill whichever a test left running."""
        await asyncio.gather(*(stop(proc) for proc in self.started))


@pytest.fixture
async def recorders(
    agi_rig: Rig,
    notify_fixture: NotifySocket,  # noqa: F811 (systemd's socket, tests/ari_app's fixture)
) -> AsyncIterator[Recorders]:
    made = Recorders(agi_rig, notify_fixture)
    yield made
    await made.close()


def _agi_port(rig: Rig) -> int:
    port = rig.config.agi.port
    assert port
    return port


async def _agi(rig: Rig, script: str, channel: str) -> dict[str, str]:
    """Run one FastAGI script for ``channel`` as Asterisk would; the variables it set."""
    sounds = rig.config.prompts.sounds_dir
    model = ChannelModel(
        sounds={str(sounds / "en" / "callrec" / "disclosure"): DISCLOSURE}, realtime=True
    )
    model.variables["CHANNEL(linkedid)"] = channel
    env = {
        "agi_network_script": script,
        "agi_uniqueid": channel,
        "agi_extension": "700",
        "agi_callerid": CALLER_NUMBER,
    }
    _, done = await run_session(_agi_port(rig), env, model)
    return done.variables


async def _dialplan_call(rig: Rig) -> str:
    """A call running in the dialplan, not in Stasis (trace 05)."""
    query: dict[str, str | int] = {
        "endpoint": "PJSIP/talker",
        "context": "from-caller",
        "extension": "700",
        "priority": 1,
        "callerId": f"Caller <{CALLER_NUMBER}>",
    }
    async with AriClient(rig.sim.url, rig.sim.user, rig.sim.password, "callrec") as client:
        body = await client.request("POST", "/channels", query)
    return str(body["id"])


def _line(rig: Rig, event: str, channel: str, **match: Any) -> dict[str, Any] | None:
    for line in rig.audit():
        about = channel in (line.get("channel"), _uniqueid(line))
        if (
            line.get("event") == event
            and about
            and all(line.get(k) == v for k, v in match.items())
        ):
            return line
    return None


def _uniqueid(line: dict[str, Any]) -> str | None:
    evidence = line.get("evidence") or {}
    return evidence.get("uniqueid")


async def _wait_line(rig: Rig, event: str, channel: str, **match: Any) -> dict[str, Any]:
    found: dict[str, Any] = await wait_until(lambda: _line(rig, event, channel, **match), 20)
    return found


def _live_records(rig: Rig) -> list[Path]:
    return sorted((rig.spool / "live").glob("*.json"))


async def _recorded_call(recorders: Recorders, *, pause: bool = False) -> Call:
    """A recorder, a dialplan call given consent and recorded over FastAGI (and paused)."""
    rig = recorders.rig
    await recorders.start()
    channel = await _dialplan_call(rig)
    consent = await _agi(rig, "consent", channel)
    assert consent["CALLREC_CONSENT"] == "implied"
    recording = await _agi(rig, "record", channel)
    first_id = recording["CALLREC_RECORDING"]
    assert first_id and _recording_up(rig)
    await asyncio.sleep(1.0)
    if pause:
        assert (await _agi(rig, "pause", channel))["CALLREC_PAUSED"] == "yes"
        await asyncio.sleep(0.5)
    return Call(channel, consent["CALLREC_ID"], first_id, _tap_ids(rig))


def _record(rig: Rig, channel: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((rig.spool / "live" / f"{channel}.json").read_text())
    return data


def _audio_onset(decoded: Decoded) -> float:
    """Seconds from the recording's start to its first audible sample."""
    loud = np.flatnonzero(np.abs(decoded.samples.astype(np.int32)) > 300)
    return float(loud[0]) / decoded.rate if loud.size else float("inf")


@pytest.mark.parametrize("how", ["kill-9", "sigterm"])
async def test_the_next_recorder_records_the_rest_of_a_dialplan_call_in_a_continuation(
    recorders: Recorders, how: str
) -> None:
    rig = recorders.rig
    call = await _recorded_call(recorders)
    await recorders.end(how)
    # The call goes on in the dialplan; the live record names the recording and its tap.
    assert rig.sim.channel(call.channel) is not None
    record = _record(rig, call.channel)
    assert (record["frontend"], record["state"], record["call_id"]) == (
        "agi",
        "recording",
        call.call_id,
    )
    assert CALLER_NUMBER.lstrip("+") not in json.dumps(record)
    await recorders.start()
    media = await wait_until(lambda: _recording_up(rig, besides=call.old_tap), 10)
    await asyncio.sleep(1.5)
    rig.sim.hangup_caller(call.channel)
    closing = await _wait_line(rig, "call", call.channel, stage="recording", reason="hangup")
    recovered = await _wait_line(rig, "call-recovered", call.channel)
    if how == "kill-9":
        adopted = next(x for x in rig.audit() if x["event"] == "recording-adopted")
        assert adopted["recording_id"] == call.first_id
        first_path, first_verdict = Path(adopted["path"]), "truncated"
    else:
        sealed = _line(rig, "call", call.channel, stage="recording", reason="shutdown")
        assert sealed is not None and sealed["recording_id"] == call.first_id
        first_path, first_verdict = Path(sealed["path"]), "complete"
    continues = {
        "call": call.channel,
        "recording_id": call.first_id,
        "path": str(first_path),
        "part": 1,
    }
    # The audit log: taken over (the dead tap removed), then the continuation sealed.
    assert recovered["recovery"] == "recording-continued" and recovered["found"] == "recording"
    assert recovered["call_id"] == call.call_id and recovered["continues"] == continues
    assert recovered["evidence"]["frontend"] == "agi"
    assert recovered["recording_id"] == closing["recording_id"] != call.first_id
    if how == "kill-9":
        assert call.old_tap <= set(recovered["removed"])
    assert not call.old_tap & ({c.id for c in rig.sim.channels} | {b.id for b in rig.sim.bridges})
    assert closing["call_id"] == call.call_id and closing["continues"] == continues
    assert closing["decision"] == "implied" and closing["sealed"] is True
    # Both files verify; the continuation names the recording it continues.
    assert str(verify(first_path, rig.keys).verdict) == first_verdict
    first = decode_recording(first_path, rig.keys)
    path = Path(closing["path"])
    assert str(verify(path, rig.keys).verdict) == "complete"
    again = decode_recording(path, rig.keys)
    evidence = again.metadata[0]
    assert evidence["continues"] == continues
    assert (evidence["decision"], evidence["frontend"]) == ("implied", "agi")
    assert evidence["prompt"] == first.metadata[0]["prompt"]
    assert evidence["times"]["decision"] == first.metadata[0]["times"]["decision"]
    assert evidence["caller"] == first.metadata[0]["caller"]
    assert evidence["personal"]["caller_number"] == CALLER_NUMBER
    # The audio after the restart is in the continuation: every packet the new
    # tap sent, and the caller's voice from its start.
    sent = rig.sim.rtp_stats(media)
    assert abs(len(again.samples) / RATE - sent.packets_sent * PACKET) <= 0.1
    assert len(again.samples) / RATE > 1.0 and _audio_onset(again) < 0.5
    # Nothing of ours left in the PBX, no live record left.
    await wait_until(lambda: not _tap_ids(rig) and not rig.sim.bridges, 5)
    assert _live_records(rig) == []


async def test_a_dialplan_call_gone_while_no_recorder_ran_is_a_lost_call(
    recorders: Recorders,
) -> None:
    rig = recorders.rig
    call = await _recorded_call(recorders)
    await recorders.end("kill-9")
    rig.sim.hangup_caller(call.channel)
    await recorders.start()
    line = await _wait_line(rig, "call-lost-by-crash", call.channel)
    await wait_until(lambda: not _tap_ids(rig) and not rig.sim.bridges, 5)
    assert (line["call_id"], line["stage"], line["recovery"]) == (
        call.call_id,
        "recording",
        "lost",
    )
    assert line["recording_id"] == call.first_id and line["decision"] == "implied"
    assert line["evidence"]["frontend"] == "agi"
    first = Path(line["path"])
    assert str(verify(first, rig.keys).verdict) == "truncated"
    assert decode_recording(first, rig.keys).metadata[0]["caller"] == line["evidence"]["caller"]
    # Its ExternalMedia (still sending to the dead port) and bridge were removed.
    assert {i for i in call.old_tap if not i.startswith("callrec-snoop-")} <= set(line["removed"])
    assert _line(rig, "call-recovered", call.channel) is None
    assert _live_records(rig) == []


async def test_a_paused_dialplan_recording_stays_paused_until_the_dialplan_resumes_it(
    recorders: Recorders,
) -> None:
    rig = recorders.rig
    call = await _recorded_call(recorders, pause=True)
    pause = _record(rig, call.channel)["pause"]
    assert pause["source"] == "agi"
    await recorders.end("kill-9")
    await recorders.start()
    await wait_until(lambda: _recording_up(rig, besides=call.old_tap), 10)
    recovered = await _wait_line(rig, "call-recovered", call.channel)
    await asyncio.sleep(1.0)  # the caller talks on, paused
    # The dialplan's /resume reaches the recording the new recorder took over.
    resumed = await _agi(rig, "resume", call.channel)
    assert resumed["CALLREC_PAUSED"] == "no" and "CALLREC_ERROR" not in resumed
    await asyncio.sleep(1.5)
    rig.sim.hangup_caller(call.channel)
    closing = await _wait_line(rig, "call", call.channel, stage="recording", reason="hangup")
    assert recovered["continues"]["paused"] == pause
    again = decode_recording(Path(closing["path"]), rig.keys)
    assert str(again.verdict) == "complete"
    assert again.metadata[0]["continues"]["paused"] == pause
    # Paused from the continuation's first instant until the /resume: only what
    # the caller said after it is in the file.
    kinds = [
        (e["event"], e.get("source")) for e in again.events if e["event"] in ("pause", "resume")
    ]
    assert kinds == [("pause", "agi"), ("resume", "agi")]
    paused, resumed_at = (e for e in again.events if e["event"] in ("pause", "resume"))
    started = datetime.fromisoformat(again.metadata[0]["times"]["recording_start"]).timestamp()
    assert abs(paused["at"] - started) < 0.05 and resumed_at["at"] - paused["at"] > 0.8
    summary = again.metadata[-1]
    (kept,) = summary["pauses"]
    assert (kept["source"], kept["resumed_by"], kept["asked_at"]) == ("agi", "agi", pause["start"])
    # The pause plays as silence of its length; the caller's voice follows the resume.
    at = round(resumed_at["at_seconds"] * RATE)
    assert not again.samples[:at].any()
    after = again.samples[at:]
    assert abs(len(after) / RATE - (summary["recording_ended"] - resumed_at["at"])) < 0.1
    assert np.abs(after.astype(np.int32)).mean() > 300
    assert closing["pauses"] == 1 and _live_records(rig) == []


async def test_a_recorder_stopped_while_taking_a_call_over_leaves_it_to_the_next(
    recorders: Recorders,
) -> None:
    # kill -9, then the restarted recorder gets SIGTERM while Asterisk has not
    # yet answered its ExternalMedia request: the call must not be forgotten.
    rig = recorders.rig
    call = await _recorded_call(recorders)
    await recorders.end("kill-9")
    external_media = ("POST", "/ari/channels/externalMedia")
    answer = rig.sim.hold_requests(*external_media)
    await recorders.start()
    await wait_until(lambda: rig.sim.held_requests(*external_media) > 0, 10)
    await recorders.end("sigterm")
    assert recorders.started[-1].returncode == 0
    record = _record(rig, call.channel)
    assert (record["frontend"], record["call_id"]) == ("agi", call.call_id)
    assert record["continues"]["recording_id"] == call.first_id
    # It said why, and removed the snoop it had made; the call talks on.
    stopped = _line(rig, "failure", call.channel, reason="shutdown", stage="recording")
    assert stopped is not None and stopped["call_id"] == call.call_id
    assert not _tap_ids(rig) and rig.sim.channel(call.channel) is not None
    # Asterisk answers at last: an ExternalMedia for a recorder that is gone.
    answer.set()
    late = await wait_until(
        lambda: {c.id for c in rig.sim.channels if c.kind == "unicast" and not c.bridge_id}, 5
    )
    await recorders.start()
    await wait_until(lambda: _recording_up(rig, besides=call.old_tap | late), 10)
    recovered = await _wait_line(rig, "call-recovered", call.channel)
    await asyncio.sleep(1.5)
    rig.sim.hangup_caller(call.channel)
    closing = await _wait_line(rig, "call", call.channel, stage="recording", reason="hangup")
    assert recovered["recovery"] == "recording-continued"
    assert late <= set(recovered["removed"])  # the late one is not left sending
    assert closing["continues"]["recording_id"] == call.first_id
    again = decode_recording(Path(closing["path"]), rig.keys)
    assert str(again.verdict) == "complete"
    assert again.metadata[0]["continues"]["recording_id"] == call.first_id
    assert len(again.samples) / RATE > 1.0 and _audio_onset(again) < 0.5
    await wait_until(lambda: not _tap_ids(rig) and not rig.sim.bridges, 5)
    assert _live_records(rig) == []


async def test_a_pause_asked_before_the_take_over_is_kept_by_the_continuation(
    recorders: Recorders,
) -> None:
    # The restarted recorder already takes AGI sessions but has not yet taken
    # the call over (Asterisk slow to answer its survey): the agent's dialplan
    # pauses before reading out a card number, and must not be recorded.
    rig = recorders.rig
    call = await _recorded_call(recorders)
    await recorders.end("kill-9")
    survey = ("GET", "/ari/bridges")
    answer = rig.sim.hold_requests(*survey)
    await recorders.start(ready=False)  # READY=1 follows the survey
    await wait_until(lambda: rig.sim.held_requests(*survey) > 0, 10)
    paused = await _agi(rig, "pause", call.channel)
    assert paused.get("CALLREC_PAUSED") == "yes" and "CALLREC_ERROR" not in paused
    assert _record(rig, call.channel)["pause"]["source"] == "agi"  # kept should it die too
    answer.set()
    recovered = await _wait_line(rig, "call-recovered", call.channel)
    await asyncio.sleep(1.0)  # the card number, said while paused
    resumed = await _agi(rig, "resume", call.channel)
    assert resumed["CALLREC_PAUSED"] == "no" and "CALLREC_ERROR" not in resumed
    await asyncio.sleep(1.5)
    rig.sim.hangup_caller(call.channel)
    closing = await _wait_line(rig, "call", call.channel, stage="recording", reason="hangup")
    assert recovered["recovery"] == "recording-continued"
    assert recovered["continues"]["paused"]["source"] == "agi"
    again = decode_recording(Path(closing["path"]), rig.keys)
    assert str(again.verdict) == "complete"
    marks = [e for e in again.events if e["event"] in ("pause", "resume")]
    assert [(e["event"], e.get("source")) for e in marks] == [("pause", "agi"), ("resume", "agi")]
    started = datetime.fromisoformat(again.metadata[0]["times"]["recording_start"]).timestamp()
    assert abs(marks[0]["at"] - started) < 0.05 and marks[1]["at"] - marks[0]["at"] > 0.8
    # Nothing before the resume is in the file; the caller's voice after it is.
    at = round(marks[1]["at_seconds"] * RATE)
    assert not again.samples[:at].any()
    assert np.abs(again.samples[at:].astype(np.int32)).mean() > 300
    assert closing["pauses"] == 1 and _live_records(rig) == []
