"""A call whose recording reaches the writer's 7-day limit mid-call, in the Stasis app.

A CRM pauses the call over the control socket and resumes it a week later
(the app's wall clock moved on: the pause would pass the limit). The writer
refuses the resume; the recording must end there and then, sealed with the
cause in its closing summary, not stay an unsealed ``.crec.part`` until a
hang-up that a stuck channel may never bring. Best-effort: the call talks
on, unrecorded; strict: it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ari_app.app import App
from ari_app.control import ControlService
from callrec.ari.sim import CallerScenario
from callrec.clock import SystemClock
from callrec.crypto.limits import MAX_RECORDING_SECONDS
from callrec.decode import decode_recording
from callrec.recording import RecordingReader, ResumeFrame, Verdict, verify
from tests.ari_app.conftest import Rig, wait_until
from tests.ari_app.test_control import calls

LIMIT = "a pause would make it longer than 7 days"


class _WallAhead(SystemClock):
    """Real time, but a test can move the wall clock on (a week passes at once)."""

    def __init__(self) -> None:
        self.ahead = 0.0

    def wall(self) -> float:
        return super().wall() + self.ahead


@pytest.fixture(params=["best-effort", "strict"])
async def app(request: pytest.FixtureRequest, rig: Rig) -> AsyncIterator[tuple[App, _WallAhead]]:
    path = rig.out / "run" / "control.sock"
    text = rig.config_path.read_text(encoding="utf-8")
    text = text.replace('socket = ""', f'socket = "{path}"')
    text = text.replace('on_failure = "best-effort"', f'on_failure = "{request.param}"')
    rig.config_path.write_text(text, encoding="utf-8")
    clock = _WallAhead()
    app = App(rig.config, clock=clock)
    rig.apps.append(app)  # the rig shuts it down
    await app.startup()
    await wait_until(app.connected.is_set, 10)
    service = ControlService(rig.config, app)
    await service.start()
    try:
        yield app, clock
    finally:
        await service.stop()


async def test_a_resume_past_the_limit_seals_the_recording_at_once(
    rig: Rig, app: tuple[App, _WallAhead], capsys: pytest.CaptureFixture[str]
) -> None:
    the_app, clock = app
    strict = the_app.config.recording.on_failure == "strict"
    caller = rig.sim.place_call(CallerScenario(exten="100", audio=rig.voice_path))

    def recording() -> bool:
        session = the_app.sessions.get(caller)
        if session is None or session.pauses is None or session.tap is None:
            return False  # the recording has not started yet
        return rig.sim.rtp_stats(session.tap.media_id).packets_sent >= 10

    await wait_until(recording, 10)
    session = the_app.sessions[caller]
    agent, tap = session.agent_id, session.tap
    assert tap is not None
    assert (await calls(capsys, rig, "pause", caller)).code == 0
    clock.ahead = MAX_RECORDING_SECONDS  # a week later
    resumed = await calls(capsys, rig, "resume", caller)
    # The CRM is told the recording is over, and why, not "already paused".
    assert resumed.code == 1 and resumed.out == ""
    assert resumed.err.startswith(f"callrec calls: call {caller}: cannot resume: its recording")
    assert f"has ended: recording stopped: recording {tap.recording_id}" in resumed.err
    assert LIMIT in resumed.err

    if strict:
        line = await rig.wait_audit(caller)
        assert line["end"] == "recording-unavailable"
        assert rig.sim.channel(caller) is None and rig.sim.channel(agent or "") is None
    else:
        # Sealed while the call goes on: caller and agent still talk.
        await wait_until(lambda: rig.sealed(), 10)
        assert rig.sim.channel(caller) is not None and rig.sim.channel(agent or "") is not None
        assert list((rig.spool / "incoming").glob("*.crec.part")) == []
        listed = await calls(capsys, rig, "list")
        assert caller in listed.out  # the call is still in progress
        assert not [x for x in rig.audit() if x.get("channel") == caller]  # not ended
        rig.sim.hangup_caller(caller)
        line = await rig.wait_audit(caller)
        assert line["end"] == "caller-hangup"

    [sealed] = rig.sealed()
    assert line["event"] == "failure" and LIMIT in line["reason"]
    assert line["sealed"] is True and line["path"] == str(sealed)
    assert verify(sealed, rig.keys).verdict is Verdict.COMPLETE
    summary = decode_recording(sealed, rig.keys).metadata[-1]
    assert summary["type"] == "summary" and LIMIT in summary["failure"]
    assert summary["reason"] == ("recording-unavailable" if strict else "recording-failed")
    [pause] = summary["pauses"]
    assert (pause["source"], pause["end"]) == ("control", None)  # ended paused
    with RecordingReader(sealed, rig.keys) as reader:
        assert not any(isinstance(frame, ResumeFrame) for frame in reader.frames())
