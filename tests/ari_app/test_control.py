"""``callrec calls`` against the running app's control socket: list, pause, resume.

The app runs against the simulator with its control service on a real Unix
socket; the CLI runs in a thread (it blocks, as a CRM's call of it does).
"""

from __future__ import annotations

import asyncio
import json
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ari_app.app import App
from ari_app.control import ControlService
from callrec.ari.sim import CallerScenario, EndpointBehaviour
from callrec.control_protocol import MAX_REQUEST
from callrec.decode import decode_recording
from tests.ari_app.conftest import Rig, wait_until
from tests.ari_app.pause_support import AFTER, BEFORE, DURING, agent_voice, heard_seconds, onset
from tests.callrec.cli_support import Run, run


@pytest.fixture
def socket_path(rig: Rig) -> Path:
    path = rig.out / "run" / "control.sock"
    text = rig.config_path.read_text(encoding="utf-8")
    rig.config_path.write_text(text.replace('socket = ""', f'socket = "{path}"'))
    return path


@pytest.fixture
async def control(rig: Rig, socket_path: Path) -> AsyncIterator[tuple[App, ControlService]]:
    app = await rig.start_app()
    service = ControlService(rig.config, app)
    await service.start()
    try:
        yield app, service
    finally:
        await service.stop()


async def calls(capsys: pytest.CaptureFixture[str], rig: Rig, *argv: str) -> Run:
    """``callrec calls ARGV --config CONFIG``, off the event loop the app runs on."""
    return await asyncio.to_thread(run, capsys, "calls", *argv, "--config", rig.config_path)


def ask(path: Path, data: bytes, lines: int = 1) -> bytes:
    """Raw bytes to the socket; what it answers until it closes or ``lines`` lines end."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(str(path))
        sock.sendall(data)
        reply = b""
        while reply.count(b"\n") < lines:
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
        return reply


async def test_a_crm_pauses_and_resumes_a_call(
    rig: Rig, control: tuple[App, ControlService], capsys: pytest.CaptureFixture[str]
) -> None:
    app, _ = control
    rig.sim.add_endpoint(
        "PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1, audio=agent_voice())
    )
    caller = rig.sim.place_call(CallerScenario(exten="100"))

    def recorded() -> str | None:
        session = app.sessions.get(caller)
        return session.agent_id if session is not None and session.pauses is not None else None

    agent = await wait_until(recorded, 10)
    channel = rig.sim.channel(agent)
    assert channel is not None and channel.media_start is not None
    answered, loop = channel.media_start, asyncio.get_running_loop()

    async def at(seconds: float) -> None:  # seconds after the agent answered
        await asyncio.sleep(max(0.0, answered + seconds - loop.time()))

    listed = await calls(capsys, rig, "list", "--json")
    assert listed.code == 0
    [row] = json.loads(listed.out)
    recording = app.sessions[caller].tap.recording_id  # type: ignore[union-attr]
    assert (row["call"], row["agent"], row["recording"], row["paused"]) == (
        caller,
        agent,
        recording,
        False,
    )
    assert row["dialled"] == "100" and row["state"] == "bridged"
    assert (row["frontend"], row["call_id"]) == ("ari", row["call"])

    await at(2.3)
    paused = await calls(capsys, rig, "pause", caller)
    assert (paused.code, paused.out) == (0, f"call {caller}: paused\n")
    again = await calls(capsys, rig, "pause", str(recording))  # the recording id names it too
    assert (again.code, again.out) == (0, f"call {caller}: already paused\n")
    table = await calls(capsys, rig, "list")
    assert caller in table.out and " yes " in table.out
    await at(5.3)
    resumed = await calls(capsys, rig, "resume", agent)  # and the agent's channel
    assert (resumed.code, resumed.out) == (0, f"call {caller}: recording\n")
    await at(8.0)
    rig.sim.hangup_caller(caller)

    line = await rig.wait_audit(caller)
    decoded = decode_recording(Path(line["path"]), rig.keys)
    samples = decoded.mono()
    assert heard_seconds(samples, DURING) == 0.0
    assert heard_seconds(samples, BEFORE) > 1.0
    a, c = onset(samples, BEFORE), onset(samples, AFTER)
    assert a is not None and c is not None
    assert c - a == pytest.approx(AFTER.start - BEFORE.start, abs=0.1)
    [pause] = decoded.metadata[-1]["pauses"]
    assert (pause["source"], pause["resumed_by"]) == ("control", "control")
    assert pause["seconds"] == pytest.approx(3.0, abs=0.2)
    assert line["pauses"] == 1
    gone = await calls(capsys, rig, "pause", caller)
    assert gone.code == 1
    assert (
        gone.err
        == f"callrec calls: no call {caller} in progress (`callrec calls list` shows them)\n"
    )


async def test_the_socket_is_owner_only_and_says_what_is_wrong(
    rig: Rig,
    control: tuple[App, ControlService],
    socket_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    mode = socket_path.lstat().st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
    assert stat.S_IMODE(socket_path.parent.stat().st_mode) == 0o700
    assert [p.name for p in socket_path.parent.iterdir()] == ["control.sock"]

    empty = await calls(capsys, rig, "list")
    assert (empty.code, empty.out) == (0, "no calls in progress\n")
    unknown = await calls(capsys, rig, "resume", "nope")
    assert (unknown.code, unknown.err) == (
        1,
        "callrec calls: no call nope in progress (`callrec calls list` shows them)\n",
    )

    def refused(data: bytes) -> str:
        reply = json.loads(ask(socket_path, data))
        assert reply["ok"] is False
        return str(reply["error"])

    assert await asyncio.to_thread(refused, b"pause\n") == "the request is not one line of JSON"
    assert await asyncio.to_thread(refused, b'{"op": "stop"}\n') == (
        "op must be one of list, pause, resume, not 'stop'"
    )
    assert await asyncio.to_thread(refused, b'{"op": "pause"}\n') == (
        "pause needs a call id (as `callrec calls list` shows), not nothing"
    )
    assert await asyncio.to_thread(refused, b'{"op": "list", "all": true}\n') == (
        "list takes no all"
    )
    assert await asyncio.to_thread(refused, b"{" + b" " * MAX_REQUEST + b"}\n") == (
        f"a request is one line of at most {MAX_REQUEST} bytes"
    )
    # Several requests on one connection, one reply line each.
    both = await asyncio.to_thread(ask, socket_path, b'{"op":"list"}\n{"op":"list"}\n', 2)
    assert [json.loads(line) for line in both.splitlines()] == [{"ok": True, "calls": []}] * 2


async def test_a_second_serve_leaves_the_socket_to_the_first(
    rig: Rig,
    control: tuple[App, ControlService],
    socket_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = control
    second = ControlService(rig.config, app)
    await second.start()
    await second.stop()
    assert "another callrec serve answers there" in caplog.text
    assert json.loads(await asyncio.to_thread(ask, socket_path, b'{"op":"list"}\n'))["ok"]


async def test_a_stale_socket_is_replaced_and_anything_else_is_left(
    rig: Rig, socket_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    app = await rig.start_app()
    socket_path.parent.mkdir(mode=0o700)
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(socket_path))
    dead.close()  # what a killed serve leaves: a socket nobody answers
    service = ControlService(rig.config, app)
    await service.start()
    assert json.loads(await asyncio.to_thread(ask, socket_path, b'{"op":"list"}\n'))["ok"]
    await service.stop()
    assert not socket_path.exists()  # its own socket removed at stop

    socket_path.write_text("not a socket")
    await service.start()
    assert f"no control socket at {socket_path}: {socket_path} exists and is not a socket" in (
        caplog.text
    )
    assert socket_path.read_text() == "not a socket"


async def test_without_serve_the_cli_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "control.sock"
    result = run(capsys, "calls", "list", "--socket", missing)
    assert result.code == 1
    assert result.err == (
        f"callrec calls: {missing}: no control socket there: is callrec serve running?\n"
    )
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(missing))
    dead.close()
    result = run(capsys, "calls", "pause", "abc", "--socket", missing)
    assert result.err == (
        f"callrec calls: {missing}: nothing answers: callrec serve is not running\n"
    )
