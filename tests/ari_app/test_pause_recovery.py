"""A recording paused when ``callrec serve`` dies stays paused in the next one (PCI DSS).

The agent says A, presses *1 (the pause), says B1; the recorder is killed
(``kill -9``) or stopped (SIGTERM); the agent says B2 while no recorder runs
and on after the next one has taken the call over; the recording is resumed
(``callrec calls resume``, the agent's *2, or the auto-resume time left);
the agent says C. The first part must hold A and neither B; the continuation
neither B, nothing at all before its resume, and C where it was said; both
files, the live record, the audit and ``callrec calls list`` must show the
pause. The recorder is a real child process against the simulator in this
process (tests/ari_app/test_crash.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Callable, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from callrec.ari.sim import CallerScenario, EndpointBehaviour
from callrec.decode import Decoded, decode_recording
from callrec.live import LiveCall, LiveRecordError, LiveState
from callrec.pausing import CARRIED_OVER, OpenPause, PauseSource
from callrec.recording import verify
from tests.ari_app.conftest import NotifySocket, Rig, serve, stop, wait_until
from tests.ari_app.pause_support import RATE, Said, agent_voice, heard_seconds, onset
from tests.callrec.cli_support import run

pytestmark = pytest.mark.timeout(150)

# What the agent says, in seconds from its answer (pitches apart from DTMF's).
A = Said(400.0, 0.8, 2.0)
B1 = Said(1050.0, 2.9, 3.9)  # paused, before the recorder dies
B2 = Said(650.0, 4.6, 12.0)  # paused: while no recorder runs, then after the take-over
C = Said(1850.0, 14.0, 15.5)  # after the resume
PAUSE_CODE = [(2.3, "*"), (2.6, "1")]
STOP_AT = 4.3
RESUME_AT = 13.0
HANG_UP = 16.5
AUTO_RESUME = 10.0  # from the pause's first digit: 12.3 s, after B2, before C
TOLERANCE = 0.15


@dataclass
class Call:
    caller: str
    agent: str
    answered: float  # the agent's answer on the event loop's clock
    answered_wall: float  # and on the wall clock (the files' times)
    old_tap: Set[str]

    def wall(self, seconds: float) -> float:
        return self.answered_wall + seconds

    async def at(self, seconds: float) -> None:
        """Wait until ``seconds`` after the agent answered."""
        loop = asyncio.get_running_loop()
        await asyncio.sleep(max(0.0, self.answered + seconds - loop.time()))

    def since_answer(self) -> float:
        return asyncio.get_running_loop().time() - self.answered


@pytest.fixture
def control_rig(rig: Rig) -> Rig:
    """The rig with the control socket on and the agent saying A, B1, B2, C."""
    text = rig.config_path.read_text(encoding="utf-8")
    text = text.replace('socket = ""', f'socket = "{rig.out / "run" / "control.sock"}"')
    rig.config_path.write_text(text, encoding="utf-8")
    voice = agent_voice((A, B1, B2, C), seconds=HANG_UP + 1.0)
    rig.sim.add_endpoint(
        "PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1, audio=voice)
    )
    return rig


@pytest.fixture
async def recorders(rig: Rig) -> AsyncIterator[list[Process]]:
    """The ``callrec serve`` children of a test, each killed at its end if still running."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for proc in started:
            await stop(proc)


def _configure(rig: Rig, recording: str) -> None:
    text = rig.config_path.read_text(encoding="utf-8")
    rig.config_path.write_text(text.replace("[recording]\n", f"[recording]\n{recording}", 1))


def _tap_ids(rig: Rig) -> set[str]:
    taps = {ch.id for ch in rig.sim.channels if ch.kind in ("snoop", "unicast")}
    return taps | {b.id for b in rig.sim.bridges if set(b.channels) <= taps}


def _recording_up(rig: Rig, besides: Set[str] = frozenset()) -> bool:
    return any(
        c.kind == "unicast" and c.bridge_id and c.id not in besides for c in rig.sim.channels
    )


async def _paused_call(rig: Rig, notified: NotifySocket, procs: list[Process]) -> Call:
    """A recorder, a call, the agent's *1; returns once B1 has been said."""
    procs.append(await serve(rig, notified))
    caller = rig.sim.place_call(CallerScenario(exten="100"))
    await wait_until(lambda: _recording_up(rig), 10)
    bridge = rig.sim.bridge_of(caller)
    assert bridge is not None
    (agent,) = (c for c in bridge.channels if c != caller)
    channel = rig.sim.channel(agent)
    assert channel is not None and channel.media_start is not None
    loop = asyncio.get_running_loop()
    answered = channel.media_start
    call = Call(caller, agent, answered, time.time() - (loop.time() - answered), _tap_ids(rig))
    for at, digit in PAUSE_CODE:
        loop.call_at(answered + at, rig.sim.send_dtmf, agent, digit)
    await call.at(STOP_AT)
    return call


async def _stop_recorder(proc: Process, how: str, notified: NotifySocket) -> None:
    if how == "kill-9":
        proc.kill()
    else:
        proc.terminate()
        await notified.expect("STOPPING=1")
    await asyncio.wait_for(proc.wait(), 10)


def _record(rig: Rig, caller: str) -> dict[str, Any]:
    path = rig.spool / "live" / f"{caller}.json"
    record: dict[str, Any] = json.loads(path.read_text())
    return record


async def _listed(rig: Rig, capsys: pytest.CaptureFixture[str], caller: str) -> dict[str, Any]:
    """The caller's row of ``callrec calls list --json`` once it shows a pause (or
    after a few seconds: a continuation that never does is the bug this is about)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 3
    while True:
        listed = await asyncio.to_thread(
            run, capsys, "calls", "list", "--json", "--config", rig.config_path
        )
        rows = json.loads(listed.out) if listed.code == 0 else []
        row: dict[str, Any] | None = next((r for r in rows if r["call"] == caller), None)
        if (row is not None and row["pauses"] > 0) or loop.time() > deadline:
            assert row is not None, f"call {caller} never listed: {listed}"
            return row
        await asyncio.sleep(0.1)


async def _take_over(
    rig: Rig,
    call: Call,
    notified: NotifySocket,
    procs: list[Process],
    capsys: pytest.CaptureFixture[str],
) -> dict[str, Any]:
    """Start the next recorder; the caller's ``calls list`` row once it records again."""
    procs.append(await serve(rig, notified))
    await wait_until(lambda: _recording_up(rig, besides=call.old_tap), 10)
    took = call.since_answer()
    # The timeline needs B2 said after the take-over too; a machine this slow
    # cannot show what this test is about.
    assert took < B2.end - 2.0, f"the take-over came {took:.1f} s after the answer"
    return await _listed(rig, capsys, call.caller)


async def _paused_then_taken_over(
    rig: Rig,
    notified: NotifySocket,
    procs: list[Process],
    capsys: pytest.CaptureFixture[str],
    how: str = "kill-9",
) -> tuple[Call, dict[str, Any], dict[str, Any]]:
    """A call paused by the agent, its recorder stopped ``how``, the next one up:
    the call, the pause its live record kept, its ``calls list`` row."""
    call = await _paused_call(rig, notified, procs)
    await _stop_recorder(procs[-1], how, notified)
    pause: dict[str, Any] = _record(rig, call.caller)["pause"]
    return call, pause, await _take_over(rig, call, notified, procs, capsys)


async def _continuation(rig: Rig, caller: str) -> tuple[dict[str, Any], Decoded]:
    def line() -> dict[str, Any] | None:
        return next(
            (
                x
                for x in rig.audit()
                if x["event"] == "call" and x.get("channel") == caller and x.get("continues")
            ),
            None,
        )

    found: dict[str, Any] = await wait_until(line, 20)
    path = Path(found["path"])
    assert str(verify(path, rig.keys).verdict) == "complete"
    return found, decode_recording(path, rig.keys)


def _first_part(rig: Rig, how: str) -> tuple[Path, str]:
    """The recording the stopped recorder left: its path and verdict."""
    if how == "kill-9":
        (adopted,) = (x for x in rig.audit() if x["event"] == "recording-adopted")
        path = Path(adopted["path"])
    else:
        (sealed,) = (x for x in rig.audit() if x["event"] == "call" and not x.get("continues"))
        assert sealed["end"] == "shutdown" and sealed["pauses"] == 1
        path = Path(sealed["path"])
    return path, str(verify(path, rig.keys).verdict)


def _marks(decoded: Decoded) -> list[dict[str, Any]]:
    return [e for e in decoded.events if e["event"] in ("pause", "resume")]


def _check_first_part(rig: Rig, call: Call, how: str) -> None:
    path, verdict = _first_part(rig, how)
    assert verdict == ("truncated" if how == "kill-9" else "complete")
    first = decode_recording(path, rig.keys)
    samples = first.mono()
    assert heard_seconds(samples, A) > 0.5  # the recording may start while A is said
    assert heard_seconds(samples, B1) == 0.0 and heard_seconds(samples, B2) == 0.0
    marks = _marks(first)
    if how == "kill-9":
        # Its pause frame may have been in the last segment, never sealed: the
        # file then ends before it (the continuation names the pause).
        assert [m["event"] for m in marks] in ([], ["pause"])
        return
    [pause] = marks  # paused to its end: no resume
    assert (pause["event"], pause["source"]) == ("pause", "agent-code")
    assert pause["at"] == pytest.approx(call.wall(PAUSE_CODE[0][0]), abs=TOLERANCE)
    [summary] = first.metadata[-1]["pauses"]
    assert (summary["start"], summary["end"], summary["resumed_by"]) == (pause["at"], None, None)


def _check_continuation(
    decoded: Decoded, call: Call, resumed_by: str, resumed_at: float
) -> dict[str, Any]:
    """The continuation holds nothing before its resume, C where it was said;
    returns its summary's pause."""
    asked = call.wall(PAUSE_CODE[0][0])
    carried = decoded.metadata[0]["continues"]["paused"]
    assert carried["source"] == "agent-code"
    assert carried["start"] == pytest.approx(asked, abs=TOLERANCE)
    pause, resume = _marks(decoded)
    # Paused from the file's first instant (the take-over), nothing before it.
    assert (pause["event"], pause["source"], pause["at_seconds"]) == ("pause", "agent-code", 0.0)
    assert pause["at"] > call.wall(STOP_AT)
    assert (resume["event"], resume["source"]) == ("resume", resumed_by)
    assert resume["at"] == pytest.approx(call.wall(resumed_at), abs=TOLERANCE)
    samples = decoded.mono()
    silent = int(resume["at_seconds"] * RATE)
    assert silent > 0 and not np.any(samples[:silent])
    for said in (A, B1, B2):
        assert heard_seconds(samples, said) == 0.0
    assert heard_seconds(samples, C) == pytest.approx(C.end - C.start, abs=0.1)
    # C stands where it was said: the pause is silence of its length in this file.
    c = onset(samples, C)
    assert c == pytest.approx(call.wall(C.start) - pause["at"], abs=0.1)
    [summary] = decoded.metadata[-1]["pauses"]
    assert (summary["start"], summary["end"]) == (pause["at"], resume["at"])
    assert (summary["source"], summary["resumed_by"]) == ("agent-code", resumed_by)
    assert summary["asked_at"] == carried["start"] and summary["note"] == CARRIED_OVER
    assert summary["seconds"] == pytest.approx(resume["paused"], abs=0.01)
    return dict(summary)


async def _until_gone(rig: Rig) -> None:
    await wait_until(lambda: not rig.sim.channels and not rig.sim.bridges)
    assert sorted((rig.spool / "live").glob("*.json")) == []


@pytest.mark.parametrize("how", ["kill-9", "sigterm"])
async def test_a_paused_call_stays_paused_after_the_recorder_dies_until_the_crm_resumes(
    control_rig: Rig,
    notify_socket: NotifySocket,
    recorders: list[Process],
    capsys: pytest.CaptureFixture[str],
    how: str,
) -> None:
    rig = control_rig
    call, pause, row = await _paused_then_taken_over(rig, notify_socket, recorders, capsys, how)
    # The record the next recorder read said the call was paused: by whom, since when.
    assert pause == {
        "start": pytest.approx(call.wall(PAUSE_CODE[0][0]), abs=TOLERANCE),
        "source": "agent-code",
        "resume_by": None,
    }
    assert (row["paused"], row["pauses"], row["agent"]) == (True, 1, call.agent)
    await call.at(RESUME_AT)
    resumed = await asyncio.to_thread(
        run, capsys, "calls", "resume", call.caller, "--config", rig.config_path
    )
    assert (resumed.code, resumed.out) == (0, f"call {call.caller}: recording\n")
    await wait_until(lambda: _record(rig, call.caller)["pause"] is None, 5)  # written after
    await call.at(HANG_UP)
    rig.sim.hangup_caller(call.caller)
    line, decoded = await _continuation(rig, call.caller)
    _check_first_part(rig, call, how)
    _check_continuation(decoded, call, "control", RESUME_AT)
    assert line["pauses"] == 1 and line["continues"]["paused"]["source"] == "agent-code"
    recovered = next(x for x in rig.audit() if x["event"] == "call-recovered")
    assert recovered["recovery"] == "recording-continued"
    assert recovered["continues"]["paused"] == line["continues"]["paused"]
    await _until_gone(rig)


async def test_the_agents_resume_code_resumes_a_call_taken_over_paused(
    control_rig: Rig,
    notify_socket: NotifySocket,
    recorders: list[Process],
    capsys: pytest.CaptureFixture[str],
) -> None:
    rig = control_rig
    call, _, row = await _paused_then_taken_over(rig, notify_socket, recorders, capsys)
    assert row["paused"] is True
    send: Callable[[str, str], None] = rig.sim.send_dtmf
    loop = asyncio.get_running_loop()
    for at, digit in ((RESUME_AT - 0.3, "*"), (RESUME_AT, "2")):
        loop.call_at(call.answered + at, send, call.agent, digit)
    loop.call_at(call.answered + HANG_UP, rig.sim.hangup_caller, call.caller)
    line, decoded = await _continuation(rig, call.caller)
    _check_first_part(rig, call, "kill-9")
    _check_continuation(decoded, call, "agent-code", RESUME_AT)
    assert line["pauses"] == 1
    await _until_gone(rig)


async def test_a_forgotten_pause_resumes_when_its_time_is_up_even_across_a_crash(
    control_rig: Rig,
    notify_socket: NotifySocket,
    recorders: list[Process],
    capsys: pytest.CaptureFixture[str],
) -> None:
    rig = control_rig
    _configure(rig, f"auto_resume = {AUTO_RESUME}\n")
    call, pause, row = await _paused_then_taken_over(rig, notify_socket, recorders, capsys)
    deadline = pause["resume_by"]
    assert deadline == pytest.approx(call.wall(PAUSE_CODE[0][0] + AUTO_RESUME), abs=TOLERANCE)
    assert row["paused"] is True
    await call.at(HANG_UP)
    rig.sim.hangup_caller(call.caller)
    line, decoded = await _continuation(rig, call.caller)
    # Resumed when the time the pause began with was up, not counted from the take-over.
    summary = _check_continuation(decoded, call, "auto-resume", PAUSE_CODE[0][0] + AUTO_RESUME)
    assert summary["end"] == pytest.approx(deadline, abs=0.05)
    assert line["durations"]["paused"] == pytest.approx(summary["seconds"], abs=0.01)
    await _until_gone(rig)


@pytest.mark.parametrize(
    ("pause", "message"),
    [
        ({"source": "agent-code"}, "pause.start: missing or not a number"),
        ({"start": 1.0, "source": "nobody"}, "pause.source: unknown value 'nobody'"),
        ({"start": 1.0, "source": "control", "resume_by": "soon"}, "pause.resume_by: missing"),
        ("paused", "pause is not a JSON object"),
    ],
)
def test_a_record_with_a_pause_it_cannot_read_names_what_is_wrong(
    pause: Any, message: str
) -> None:
    """Such a record is unusable: the call is left talking unrecorded (never recorded
    unpaused), and the record is audited as unreadable (tests/ari_app/test_crash.py)."""
    data = LiveCall("1.1", "callrec", LiveState.BRIDGED, 1.0, "p1:x", "100").to_json()
    assert LiveCall.from_json(data, "r.json").pause is None
    paused = OpenPause(5.0, PauseSource.CONTROL, 65.0)
    data["pause"] = paused.to_json()
    assert LiveCall.from_json(data, "r.json").pause == paused
    data["pause"] = pause
    with pytest.raises(LiveRecordError) as caught:
        LiveCall.from_json(data, "r.json")
    assert str(caught.value).startswith(f"live call record r.json: {message}")
