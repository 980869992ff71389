"""The end-to-end rig: ARI simulator + the real Stasis app + real files, on loopback.

Prompts are short generated WAVs and the grace is 0.3 s so a whole call takes
a few seconds. Everything goes through real sockets: the simulator's HTTP and
websocket, and real UDP RTP into the media recorder.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile as sf

from ari_app.app import App
from ari_app.demo import (
    SIM_PASSWORD,
    SIM_USER,
    write_config,
    write_keys,
    write_prompts,
)
from callrec.ari.sim import AriSimulator, EndpointBehaviour
from callrec.audit import read_audit
from callrec.config import Config, load_config
from callrec.crypto.keys import PrivateKey
from callrec.media.signals import speech_like

DISCLOSURE = 0.6
GRACE = 0.3
RATE = 8000
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Rig:
    """One simulated PBX with the app attached, and the files they write."""

    sim: AriSimulator
    out: Path
    config_path: Path
    keys: list[PrivateKey]
    voice: npt.NDArray[np.int16]
    voice_path: Path
    app: App | None = None
    apps: list[App] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    @property
    def audit_path(self) -> Path:
        return self.out / "audit.jsonl"

    @property
    def spool(self) -> Path:
        return self.out / "spool"

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return list(read_audit(self.audit_path))

    def sealed(self) -> list[Path]:
        return sorted(self.spool.glob("[0-9]*/*/*/*.crec"))

    def serve_log(self) -> str:
        path = self.out / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start_app(self, config: Config | None = None) -> App:
        app = App(config or self.config)
        await app.startup()
        await asyncio.wait_for(app.connected.wait(), 10)
        self.app = app
        self.apps.append(app)
        return app

    async def wait_audit(self, channel_id: str, within: float = 20.0) -> dict[str, Any]:
        """The audit line of a call, once the call is over."""
        line: dict[str, Any] = await wait_until(
            lambda: _line_for(self.audit(), channel_id), within
        )
        return line


def _line_for(lines: list[dict[str, Any]], channel_id: str) -> dict[str, Any] | None:
    return next((line for line in lines if line.get("channel") == channel_id), None)


async def wait_until(probe: Callable[[], Any], within: float = 20.0, step: float = 0.05) -> Any:
    """Poll ``probe`` until it returns something truthy (TimeoutError after ``within`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = probe()
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(step)


def make_rig_files(out: Path) -> tuple[Path, list[PrivateKey], npt.NDArray[np.int16], Path]:
    sounds = out / "sounds"
    write_prompts(
        sounds,
        {"disclosure": DISCLOSURE, "not-available": 0.4, "recording-unavailable": 0.4},
    )
    _, key_path, _ = write_keys(out)
    voice = speech_like(20.0, seed=7)
    voice_path = out / "voice.wav"
    sf.write(str(voice_path), voice, RATE, subtype="PCM_16")
    return sounds, [PrivateKey.load(key_path)], voice, voice_path


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    """A started simulator with agents, a config for it, and the app running."""
    sounds, keys, voice, voice_path = make_rig_files(tmp_path)
    sim = AriSimulator(user=SIM_USER, password=SIM_PASSWORD, sounds_dir=sounds)
    await sim.start()
    sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1))
    sim.add_endpoint("PJSIP/busy", EndpointBehaviour(kind="busy", answer_after=0.1))
    sim.add_endpoint("PJSIP/away", EndpointBehaviour(kind="no-answer"))
    config_path = write_config(
        tmp_path,
        sim.url,
        sounds_dir=sounds,
        destinations={"100": "PJSIP/agent", "200": "PJSIP/busy", "300": "PJSIP/away"},
        grace=GRACE,
    )
    rig = Rig(sim, tmp_path, config_path, keys, voice, voice_path)
    try:
        yield rig
    finally:
        for app in rig.apps:
            await app.shutdown()
        await sim.stop()


@pytest.fixture
async def running(rig: Rig) -> Rig:
    await rig.start_app()
    return rig


def noise(seconds: float, seed: int = 3) -> npt.NDArray[np.int16]:
    """The control signal: white noise, unrelated to any voice."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(int(seconds * RATE)) * 3000).astype(np.int16)


class NotifySocket:
    """What systemd hands a ``Type=notify`` service: a unix datagram socket
    (abstract namespace, so no path length limit) named by ``$NOTIFY_SOCKET``."""

    def __init__(self) -> None:
        self.name = f"@callrec-test-{secrets.token_hex(8)}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name[1:])
        self.sock.setblocking(False)
        self.received: list[str] = []

    async def expect(self, line: str, within: float = 20.0) -> str:
        """The next message holding ``line`` (``READY=1``); messages before it are kept."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(within):
            while True:
                message = (await loop.sock_recv(self.sock, 4096)).decode()
                self.received.append(message)
                if line in message.splitlines():
                    return message

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    notified = NotifySocket()
    try:
        yield notified
    finally:
        notified.close()


async def serve(
    rig: Rig,
    notified: NotifySocket,
    preexec_fn: Callable[[], None] | None = None,
    *,
    args: Sequence[str] = (),
    ready: bool = True,
) -> Process:
    """``callrec serve ARGS`` as a child process, once it has told systemd ``READY=1``
    (``ready`` False: at once, for a test that holds back what READY waits for).

    Its log goes to ``<out>/serve.log`` (a pipe nobody reads would fill up).
    """
    env = {**os.environ, "NOTIFY_SOCKET": notified.name}
    with (rig.out / "serve.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callrec",
            "serve",
            "--config",
            str(rig.config_path),
            *args,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
    if not ready:
        return proc
    try:
        await notified.expect("READY=1")
    except TimeoutError:
        proc.kill()
        await proc.wait()
        tail = rig.serve_log()[-3000:]
        raise AssertionError(f"callrec serve never got ready:\n{tail}") from None
    return proc


async def stop(proc: Process) -> None:
    """End a child that a test left running."""
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


def playbacks(rig: Rig, channel_id: str) -> list[dict[str, Any]]:
    """The playbacks started on a channel, in order (``id``, ``media_uri``, ...)."""
    target = f"channel:{channel_id}"
    return [
        e["playback"]
        for e in rig.sim.events
        if e["type"] == "PlaybackStarted" and e["playback"]["target_uri"] == target
    ]
