"""``callrec doctor`` against the real Asterisk 22, as an admin runs it after install.

Beside a running ``callrec serve`` every line must say ok: the doctor asks
the real PBX for its modules and sounds, finds the recorder holding its app
and FastAGI port, and gets real RTP back from an ExternalMedia channel fed
by a bridge playback of the installed disclosure; it leaves nothing in
Asterisk and never takes the recorder's app away.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from callrec.doctor.result import CheckName, Status
from callrec.doctor.runner import Options, run_doctor

from .conftest import ROOT, MakeRecorder, Pbx, Recorder

pytestmark = pytest.mark.realpbx


async def doctor_cli(config: Path, *args: str) -> tuple[int, str]:
    """``callrec doctor --config CONFIG`` as a subprocess: exit code and what it printed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callrec",
        "doctor",
        "--config",
        str(config),
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "CALLREC_ARI_PASSWORD"},
    )
    out, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_doctor_passes_beside_a_running_recorder(recorder: Recorder, pbx: Pbx) -> None:
    assert recorder.proc is not None
    pid = recorder.proc.pid
    code, out = await doctor_cli(recorder.config_path)
    assert code == 0, out
    for check in CheckName:
        assert re.search(rf"^ok +{re.escape(check)} ", out, re.M), (check, out)
    assert f"'callrec' is held by the running callrec serve (pid {pid})" in out
    assert f"127.0.0.1:4573 is served by the running callrec serve (pid {pid})" in out
    assert re.search(r"^ok +asterisk +Asterisk \S*22\S*: all \d+ modules callrec needs", out, re.M)
    assert "Asterisk finds each" in out
    assert re.search(r"^ok +media +\d+ RTP packets of ulaw audio from Asterisk reached", out, re.M)
    assert pbx.password not in out
    # Nothing of the round trip is left, and the recorder still holds its app.
    assert pbx.channels() == []
    assert pbx.bridges() == []
    await recorder.wait_ready(within=5)


@pytest.mark.parametrize("media_format", ["alaw", "slin16"])
async def test_media_round_trip_in_each_format(
    make_recorder: MakeRecorder, pbx: Pbx, media_format: str
) -> None:
    recorder = await make_recorder(start=False, media_format=media_format)
    results = await run_doctor(recorder.config_path, Options(min_free=1), env={})
    found = {r.name: r for r in results}
    media = found[CheckName.MEDIA]
    assert media.status is Status.OK, media
    assert f"RTP packets of {media_format} audio from Asterisk reached 127.0.0.1:" in media.summary
    assert found[CheckName.ASTERISK].status is Status.OK, found[CheckName.ASTERISK]
    assert pbx.channels() == []
    assert pbx.bridges() == []


async def test_wrong_password_is_named_and_fails(make_recorder: MakeRecorder, pbx: Pbx) -> None:
    recorder = await make_recorder(start=False)
    text = recorder.config_path.read_text(encoding="utf-8")
    wrong = "not-the-test-password"
    recorder.config_path.write_text(
        text.replace(f'password = "{pbx.password}"', f'password = "{wrong}"'), encoding="utf-8"
    )
    code, out = await doctor_cli(recorder.config_path)
    assert code == 1
    assert re.search(r"^FAIL +ari +.*user 'callrec' refused \(401\)", out, re.M), out
    assert wrong not in out
    assert pbx.password not in out


async def test_app_held_by_another_client_fails(make_recorder: MakeRecorder, pbx: Pbx) -> None:
    recorder = await make_recorder(start=False)
    params = {"app": "callrec", "api_key": f"{pbx.user}:{pbx.password}"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{pbx.ari_url}/ari/events", params=params) as other,
    ):
        code, out = await doctor_cli(recorder.config_path)
        assert not other.closed  # the doctor never replaced it
    assert code == 1
    assert re.search(r"^FAIL +stasis-app +'callrec' is registered by another process", out, re.M)
