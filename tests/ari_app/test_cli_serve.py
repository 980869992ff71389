"""``callrec serve`` as systemd runs it: what it loads, how much it logs, and log
lines journald files under the right priority."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from callrec.ari.sim import CallerScenario
from callrec.recording import verify
from tests.ari_app.conftest import DISCLOSURE, GRACE, NotifySocket, Rig, serve, stop
from tests.callrec.cli_support import ModuleSpy, loaded


async def _serve_until_stopped(rig: Rig, notified: NotifySocket, *args: str) -> None:
    """Start serve, wait for READY=1, then SIGTERM it; it must exit cleanly."""
    proc = await serve(rig, notified, args=args)
    try:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        await stop(proc)
    assert proc.returncode == 0, rig.serve_log()[-3000:]


async def test_serve_records_a_call_without_loading_the_prompt_converter(
    rig: Rig, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = ModuleSpy.install(rig.out / "spy")
    for name, value in spy.env.items():
        monkeypatch.setenv(name, value)
    proc = await serve(rig, notify_socket)
    try:
        caller = rig.sim.place_call(
            CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 2)
        )
        line = await rig.wait_audit(caller)
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        await stop(proc)
    assert proc.returncode == 0, rig.serve_log()[-3000:]
    assert line["decision"] == "implied"
    assert str(verify(Path(line["path"]), rig.keys).verdict) == "complete"
    modules = spy.modules()
    assert loaded(modules, "ari_app") and loaded(modules, "agi")  # it really served
    assert [name for name in ("scipy", "pyloudnorm") if loaded(modules, name)] == []


def _journal_log(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> Path:
    """serve.log, made the journald stream of the next serve (as systemd would)."""
    log = rig.out / "serve.log"
    log.unlink(missing_ok=True)
    log.touch()
    st = log.stat()
    monkeypatch.setenv("JOURNAL_STREAM", f"{st.st_dev}:{st.st_ino}")
    return log


async def test_under_systemd_errors_reach_journalctl_p_err_and_q_keeps_only_them(
    rig: Rig, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spool whose incoming/ is a file: serve starts, but logs an ERROR.
    (rig.spool).mkdir()
    (rig.spool / "incoming").write_text("not a folder")

    log = _journal_log(rig, monkeypatch)
    await _serve_until_stopped(rig, notify_socket)
    lines = log.read_text().splitlines()
    errors = [line for line in lines if line.startswith("<3>ERROR ")]
    assert any("spool" in line and "unusable" in line for line in errors), lines
    assert any(line.startswith("<6>INFO ari_app.app: callrec app ") for line in lines), lines
    assert all(line[:3] in ("<3>", "<4>", "<6>") for line in lines), lines

    # -q after the subcommand: the config's INFO level gives way to errors only.
    log = _journal_log(rig, monkeypatch)
    await _serve_until_stopped(rig, notify_socket, "-q")
    lines = log.read_text().splitlines()
    assert lines and all(line.startswith("<3>") for line in lines), lines
    assert any("spool" in line and "unusable" in line for line in lines)
