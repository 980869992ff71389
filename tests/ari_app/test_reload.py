"""``callrec serve`` as systemd runs it: SIGHUP reload, watchdog, service audit lines.

Each test runs the real command as a child process against the simulator,
with a real ``$NOTIFY_SOCKET``, and swaps the config file under it as an
admin would before ``systemctl reload callrec``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import sys
from asyncio.subprocess import Process
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest

from ari_app.demo import write_prompts
from callrec.ari.sim import CallerScenario
from callrec.audit import read_audit
from callrec.recording import verify
from tests.ari_app.conftest import (
    GRACE,
    ROOT,
    NotifySocket,
    Rig,
    playbacks,
    serve,
    stop,
    wait_until,
)

# The disclosure of the call in progress is long, so the reload surely lands in it.
LONG_DISCLOSURE = 4.0


def _swap_config(rig: Rig, **replace: str) -> None:
    """Rewrite the config as an editor would: the whole file replaced at once."""
    text = rig.config_path.read_text()
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    staged = rig.config_path.with_suffix(".new")
    staged.write_text(text)
    os.replace(staged, rig.config_path)


async def _reload(proc: Process, notified: NotifySocket) -> tuple[str, str]:
    """SIGHUP, then the RELOADING=1 and READY=1 messages that bracket the reload."""
    proc.send_signal(signal.SIGHUP)
    reloading = await notified.expect("RELOADING=1")
    ready = await notified.expect("READY=1")
    return reloading, ready


async def _stop(proc: Process, rig: Rig, sig: signal.Signals = signal.SIGTERM) -> None:
    try:
        proc.send_signal(sig)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        await stop(proc)
    assert proc.returncode == 0, rig.serve_log()[-3000:]


def _service_lines(rig: Rig) -> list[dict[str, Any]]:
    return [line for line in read_audit(rig.audit_path) if line["event"] == "service"]


def _log_lines(rig: Rig, level: str) -> list[str]:
    return [line for line in rig.serve_log().splitlines() if f" {level} " in line]


def _media(rig: Rig, channel: str) -> list[str]:
    return [p["media_uri"] for p in playbacks(rig, channel)]


def _finished_playing(rig: Rig, channel: str) -> bool:
    target = f"channel:{channel}"
    return any(
        e["type"] == "PlaybackFinished" and e["playback"]["target_uri"] == target
        for e in rig.sim.events
    )


async def test_a_reload_serves_the_next_call_with_the_new_config_and_lets_the_current_finish(
    rig: Rig, notify_socket: NotifySocket
) -> None:
    sounds = rig.config.prompts.sounds_dir
    write_prompts(sounds, {"disclosure": LONG_DISCLOSURE, "not-available": 0.4})
    notice = sounds / "en" / "callrec" / "notice.wav"
    shutil.copyfile(sounds / "en" / "callrec" / "not-available.wav", notice)  # any WAV will do
    proc = await serve(rig, notify_socket)
    try:
        talking = rig.sim.place_call(
            CallerScenario(
                exten="100", audio=rig.voice_path, hangup_after=LONG_DISCLOSURE + GRACE + 2.5
            )
        )
        await wait_until(lambda: playbacks(rig, talking))
        _swap_config(
            rig,
            **{
                '"100" = { endpoint = "PJSIP/agent"': '"100" = { endpoint = "PJSIP/busy"',
                'default_language = "en"\n': 'default_language = "en"\n'
                'disclosure = "callrec/notice"\n',
                'app = "callrec"': 'app = "elsewhere"',
                'on_failure = "best-effort"\n': 'on_failure = "best-effort"\nmedia_port = 40999\n',
            },
        )
        reloading, ready = await _reload(proc, notify_socket)
        # The reload is done while the first call is still in its disclosure.
        assert not _finished_playing(rig, talking)

        later = rig.sim.place_call(CallerScenario(exten="100", hangup_after=8.0))
        later_line = await rig.wait_audit(later)
        talking_line = await rig.wait_audit(talking)
        await _stop(proc, rig)
    finally:
        await stop(proc)

    assert re.fullmatch(r"RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=.*", reloading)
    assert "STATUS=config reloaded" in ready
    # The call in progress: its old disclosure, its old destination, recorded.
    assert _media(rig, talking) == ["sound:callrec/disclosure"]
    assert talking_line["end"] == "caller-hangup"
    assert talking_line["destination"] == "answered"
    assert str(verify(Path(talking_line["path"]), rig.keys).verdict) == "complete"
    # The next call: the new disclosure, the new destination (busy).
    assert _media(rig, later) == ["sound:callrec/notice", "sound:callrec/not-available"]
    prompt = later_line["evidence"]["prompt"]
    assert prompt == {"id": "en/callrec/notice", "sha256": sha256(notice.read_bytes()).hexdigest()}
    assert later_line["end"] == "destination-unavailable"
    # The app's name and the media port need a restart: said, and kept.
    config = rig.config_path
    warnings = _log_lines(rig, "WARNING")
    for key in ("ari.app", "recording.media_port"):
        assert any(f"{config}:{key} changed: needs a restart" in w for w in warnings), warnings

    start, reload, stopped = _service_lines(rig)
    assert reload["action"] == "reload" and reload["result"] == "ok"
    assert reload["changed"] == ["prompts", "destinations"]
    assert reload["needs_restart"] == ["ari.app", "recording.media_port"]
    assert reload["config"]["sha256"] != start["config"]["sha256"]
    assert (stopped["action"], stopped["reason"], stopped["calls_open"]) == ("stop", "SIGTERM", 0)
    verify_audit = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "callrec", "audit", "verify", str(rig.audit_path)),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await verify_audit.communicate()
    assert verify_audit.returncode == 0, out.decode()
    assert "chain intact: 5 line(s)" in out.decode()  # start, 2 calls, reload, stop


async def test_an_invalid_config_is_refused_by_file_and_key_and_the_old_one_serves(
    rig: Rig, notify_socket: NotifySocket
) -> None:
    proc = await serve(rig, notify_socket)
    try:
        _swap_config(
            rig,
            **{
                f"grace = {GRACE}": "grace = -1",
                'endpoint = "PJSIP/agent"': 'endpoint = "agent with spaces"',
            },
        )
        _, ready = await _reload(proc, notify_socket)
        assert proc.returncode is None  # still serving
        caller = rig.sim.place_call(
            CallerScenario(exten="100", audio=rig.voice_path, hangup_after=0.6 + GRACE + 2.0)
        )
        line = await rig.wait_audit(caller)
        await _stop(proc, rig)
    finally:
        await stop(proc)

    assert "STATUS=reload refused" in ready
    errors = _log_lines(rig, "ERROR")
    config = rig.config_path
    for key in ("consent.grace", 'destinations."100".endpoint'):
        assert any(f"reload refused: {config}:{key}: " in e for e in errors), errors
    # The old config still runs: its disclosure, its destination, recorded.
    assert _media(rig, caller) == ["sound:callrec/disclosure"]
    assert line["decision"] == "implied" and line["destination"] == "answered"
    assert str(verify(Path(line["path"]), rig.keys).verdict) == "complete"
    _, refused, _ = _service_lines(rig)
    assert refused["result"] == "refused"
    assert sorted(refused["problems"]) == sorted(
        [f"{config}:consent.grace", f'{config}:destinations."100".endpoint']
    )


async def test_the_watchdog_is_fed_from_the_running_loop(
    rig: Rig, notify_socket: NotifySocket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # pings every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    proc = await serve(rig, notify_socket)
    try:
        for _ in range(3):
            assert await notify_socket.expect("WATCHDOG=1") == "WATCHDOG=1"
        await _stop(proc, rig, signal.SIGINT)
    finally:
        await stop(proc)
    start, stopped = _service_lines(rig)
    assert start["action"] == "start" and start["pid"] == proc.pid
    assert start["version"] and start["recipients"] and start["recorder_key"] is None
    assert stopped["reason"] == "SIGINT"


async def test_sighup_no_longer_ends_serve(rig: Rig, notify_socket: NotifySocket) -> None:
    """Before it was handled, SIGHUP ended serve at once, without a word."""
    proc = await serve(rig, notify_socket)
    try:
        for _ in range(2):
            await _reload(proc, notify_socket)
        assert proc.returncode is None
        await _stop(proc, rig)
    finally:
        await stop(proc)
    reloads = [line for line in _service_lines(rig) if line["action"] == "reload"]
    assert [(r["result"], r["changed"]) for r in reloads] == [("ok", []), ("ok", [])]
