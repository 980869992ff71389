"""``callrec calls`` and dialplan (FastAGI) recordings: listed, paused and resumed by a CRM.

The production wiring against the simulator: the Stasis app with the FastAGI
service beside it and the control socket on a real Unix socket, told of the
FastAGI recordings as ``callrec serve`` tells it (``callrec/cli/app_cmds.py``).
The call runs in the simulator's dialplan; a fake Asterisk runs the AGI
scripts for it over TCP; ``callrec calls`` runs in a thread, as a CRM's call
of it blocks.

What the channel says (``agent_voice``): a tone of its own pitch for each
part, so the decrypted recording shows which parts it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ari_app.control import ControlService
from callrec.ari.sim import EndpointBehaviour
from callrec.crypto.limits import MAX_RECORDING_SECONDS
from callrec.decode import decode_recording
from tests.agi.test_recording import Rig, _WallAhead, make_rig, wait_until
from tests.ari_app.pause_support import Said, agent_voice, heard_seconds, onset
from tests.callrec.cli_support import Run, run

# Seconds after the channel answered. Recorded: SAID_*; said while paused: HIDDEN_*.
SAID_1 = Said(400.0, 2.0, 3.0)
HIDDEN_1 = Said(1050.0, 4.0, 5.0)  # the CRM paused, the dialplan's /resume ends it
SAID_2 = Said(1850.0, 6.0, 7.0)
HIDDEN_2 = Said(550.0, 8.0, 9.0)  # the dialplan's /pause, the CRM resumes
SAID_3 = Said(2300.0, 10.0, 11.0)
VOICE = (SAID_1, HIDDEN_1, SAID_2, HIDDEN_2, SAID_3)
CALL_SECONDS = 12.5


@dataclasses.dataclass
class Controlled:
    rig: Rig
    socket: Path
    calls: Callable[..., Awaitable[Run]]


@contextlib.asynccontextmanager
async def _controlled(rig: Rig, capsys: pytest.CaptureFixture[str]) -> AsyncIterator[Controlled]:
    """The rig with serve's control socket, which sees the rig's FastAGI recordings."""
    path = rig.out / "run" / "control.sock"
    control = dataclasses.replace(rig.config.control, socket=path)
    config = dataclasses.replace(rig.config, control=control)
    service = ControlService(config, rig.app, rig.service)
    await service.start()

    async def calls(*argv: str) -> Run:
        return await asyncio.to_thread(run, capsys, "calls", *argv, "--socket", path)

    try:
        yield Controlled(rig, path, calls)
    finally:
        await service.stop()
        await rig.app.shutdown()
        await rig.sim.stop()


@pytest.fixture
async def crm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> AsyncIterator[Controlled]:
    rig = await make_rig(tmp_path)
    voice = agent_voice(VOICE, seconds=CALL_SECONDS + 1)
    rig.sim.add_endpoint(
        "PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.05, audio=voice)
    )
    async with _controlled(rig, capsys) as controlled:
        yield controlled


async def _recorded_call(rig: Rig, seconds: float) -> tuple[str, str, str]:
    """A dialplan call given consent and recorded: its uniqueid, CALLREC_ID, recording id."""
    cid = await rig.dialplan_call(seconds=seconds)
    consent = await rig.agi("consent", cid)
    record = await rig.agi("record", cid)
    return cid, consent.variables["CALLREC_ID"], record.variables["CALLREC_RECORDING"]


async def test_a_crm_lists_pauses_and_resumes_a_dialplan_recording(
    crm: Controlled,
) -> None:
    rig, calls = crm.rig, crm.calls
    cid, call_id, recording_id = await _recorded_call(rig, CALL_SECONDS)
    channel = rig.sim.channel(cid)
    assert channel is not None and channel.media_start is not None and recording_id
    answered, loop = channel.media_start, asyncio.get_running_loop()

    async def at(seconds: float) -> None:  # seconds after the channel answered
        await asyncio.sleep(max(0.0, answered + seconds - loop.time()))

    listed = await calls("list", "--json")
    assert listed.code == 0
    [row] = json.loads(listed.out)
    assert (row["call"], row["frontend"], row["call_id"], row["recording"]) == (
        cid,
        "agi",
        call_id,
        recording_id,
    )
    assert (row["state"], row["paused"], row["pauses"], row["dialled"]) == (
        "recording",
        False,
        0,
        "100",
    )
    assert row["caller"] == "+49301•••56"  # masked, as in the Stasis app's rows
    table = await calls("list")
    header, line = table.out.splitlines()
    assert header.split() == [
        "CALL",
        "FRONTEND",
        "STATE",
        "DIALLED",
        "CALLER",
        "PAUSED",
        "RECORDING",
    ]
    assert line.split() == [cid, "agi", "recording", "100", "+49301•••56", "no", recording_id]

    # The CRM pauses (by CALLREC_ID); the dialplan's /resume ends that pause.
    await at(3.5)
    paused = await calls("pause", call_id)
    assert (paused.code, paused.out, paused.err) == (0, f"call {cid}: paused\n", "")
    again = await calls("pause", recording_id)
    assert (again.code, again.out) == (0, f"call {cid}: already paused\n")
    assert json.loads((await calls("list", "--json")).out)[0]["paused"] is True
    await at(5.5)
    resumed = await rig.agi("resume", cid)
    assert resumed.variables["CALLREC_PAUSED"] == "no"
    assert "CALLREC_ERROR" not in resumed.variables
    # The dialplan pauses (from another leg, by linkedid); the CRM resumes.
    await at(7.5)
    dialplan = await rig.agi("pause", "1795915999.7", linkedid=cid)
    assert dialplan.variables["CALLREC_PAUSED"] == "yes"
    assert "yes" in (await calls("list")).out.splitlines()[1].split()
    await at(9.5)
    crm_resume = await calls("resume", cid)
    assert (crm_resume.code, crm_resume.out) == (0, f"call {cid}: recording\n")

    (audit,) = await wait_until(lambda: rig.audit("recording"), 15)
    assert audit["event"] == "call" and audit["pauses"] == 2
    decoded = decode_recording(Path(audit["path"]), rig.keys)
    samples = decoded.mono()
    assert heard_seconds(samples, HIDDEN_1) == 0.0 and heard_seconds(samples, HIDDEN_2) == 0.0
    for said in (SAID_1, SAID_2, SAID_3):
        assert heard_seconds(samples, said) > 0.8, said
    # Each pause plays as silence of its true length: what follows stands where it was said.
    first, second, third = (onset(samples, said) for said in (SAID_1, SAID_2, SAID_3))
    assert first is not None and second is not None and third is not None
    assert second - first == pytest.approx(SAID_2.start - SAID_1.start, abs=0.1)
    assert third - first == pytest.approx(SAID_3.start - SAID_1.start, abs=0.1)
    # The file names who asked: the control socket, then the dialplan, and back.
    pauses = decoded.metadata[-1]["pauses"]
    assert [(p["source"], p["resumed_by"]) for p in pauses] == [
        ("control", "agi"),
        ("agi", "control"),
    ]
    marks = [
        (e["event"], e["source"]) for e in decoded.events if e["event"] in ("pause", "resume")
    ]
    assert marks == [
        ("pause", "control"),
        ("resume", "agi"),
        ("pause", "agi"),
        ("resume", "control"),
    ]

    gone = await calls("pause", cid)
    assert gone.code == 1
    assert (
        gone.err == f"callrec calls: no call {cid} in progress (`callrec calls list` shows them)\n"
    )


@pytest.fixture
async def week_later(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> AsyncIterator[tuple[Controlled, _WallAhead]]:
    clock = _WallAhead()
    rig = await make_rig(tmp_path, clock=clock)
    async with _controlled(rig, capsys) as controlled:
        yield controlled, clock


async def test_a_resume_the_writer_refuses_says_the_recording_ended_and_why(
    week_later: tuple[Controlled, _WallAhead],
) -> None:
    crm, clock = week_later
    rig, calls = crm.rig, crm.calls
    cid, call_id, recording_id = await _recorded_call(rig, 8.0)
    await asyncio.sleep(0.8)
    assert (await calls("pause", cid)).code == 0
    clock.ahead = MAX_RECORDING_SECONDS  # the pause would make the file pass 7 days

    resumed = await calls("resume", call_id)
    assert resumed.code == 1 and resumed.out == ""
    assert resumed.err.startswith(
        f"callrec calls: call {cid}: cannot resume: its recording has ended: "
        f"recording stopped: recording {recording_id}: a pause would make it longer than 7 days"
    )
    (line,) = await wait_until(lambda: rig.audit("recording"), 15)
    assert line["event"] == "failure" and "longer than 7 days" in line["reason"]
    assert rig.sim.channel(cid) is not None  # the call goes on in the dialplan, unrecorded
    summary = decode_recording(Path(line["path"]), rig.keys).metadata[-1]
    assert [(p["source"], p["end"]) for p in summary["pauses"]] == [("control", None)]
    # Sealed: neither the CRM nor the dialplan finds a recording to resume.
    after = await calls("resume", cid)
    assert (after.code, after.err) == (
        1,
        f"callrec calls: no call {cid} in progress (`callrec calls list` shows them)\n",
    )
    dialplan = await rig.agi("resume", cid)
    assert dialplan.variables["CALLREC_ERROR"] == "not-recording"
