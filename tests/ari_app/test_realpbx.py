"""The call flow against a real Asterisk, when one is configured (docs/OPERATIONS.md §6).

Set ``CALLREC_TEST_ARI_URL`` (and ``CALLREC_TEST_ARI_USER``/``PASSWORD``,
``CALLREC_TEST_SOUNDS_DIR``) to run these; they are skipped otherwise. The
caller is a Local channel originated into the PBX's ``from-caller`` context,
whose dialplan half enters ``Stasis(callrec,${EXTEN})`` exactly like a SIP
caller; its other half belongs to a second ARI app (``callrec-test``) that
plays a sound into the call, sends DTMF and hangs up, as the caller would.
The destination is ``Local/echo@lab`` (Answer, Echo()).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ari_app.app import App
from ari_app.demo import write_config, write_keys
from callrec.ari.client import AriClient
from callrec.ari.events import Event
from callrec.ari.router import EventRouter
from callrec.config import load_config
from callrec.crypto.keys import PrivateKey
from callrec.recording import verify
from tests.ari_app.conftest import wait_until

URL = os.environ.get("CALLREC_TEST_ARI_URL", "")
USER = os.environ.get("CALLREC_TEST_ARI_USER", "callrec")
PASSWORD = os.environ.get("CALLREC_TEST_ARI_PASSWORD", "callrec-secret")
SOUNDS = Path(os.environ.get("CALLREC_TEST_SOUNDS_DIR", "/var/lib/asterisk/sounds"))
HARNESS_APP = "callrec-test"

pytestmark = [
    pytest.mark.realpbx,
    pytest.mark.skipif(not URL, reason="CALLREC_TEST_ARI_URL is not set (no real PBX)"),
]


@dataclass
class RealRig:
    app: App
    harness: AriClient
    router: EventRouter
    out: Path
    keys: list[PrivateKey]

    async def call(self, number: str, *, hangup_after: float, dtmf: str | None = None) -> str:
        """Place a caller into Stasis(callrec, number); returns the caller channel's id."""
        peer, caller = f"test-{uuid.uuid4().hex[:12]}", f"test-{uuid.uuid4().hex[:12]}"
        self.router.expect(peer)
        await self.harness.request(
            "POST",
            "/channels",
            {
                "endpoint": f"Local/{number}@from-caller",
                "app": HARNESS_APP,
                "channelId": peer,
                "otherChannelId": caller,
                "callerId": "Real Test <+4930123456>",
            },
        )
        asyncio.get_running_loop().create_task(self._act(peer, hangup_after, dtmf))
        return caller

    async def _act(self, peer: str, hangup_after: float, dtmf: str | None) -> None:
        with contextlib.suppress(Exception):
            await self.router.wait_for(peer, "StasisStart", 10)
            await self.harness.play(peer, "sound:demo-congrats")
            if dtmf:
                await asyncio.sleep(0.5)
                await self.harness.request("POST", f"/channels/{peer}/dtmf", {"dtmf": dtmf})
            await asyncio.sleep(hangup_after)
            await self.harness.hangup(peer)

    async def wait_audit(self, channel_id: str) -> dict[str, object]:
        import json

        def line() -> dict[str, object] | None:
            path = self.out / "audit.jsonl"
            if not path.exists():
                return None
            for text in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(text)
                if record.get("channel") == channel_id:
                    return dict(record)
            return None

        found: dict[str, object] = await wait_until(line, 60)
        return found


@pytest.fixture
async def real(tmp_path: Path) -> AsyncIterator[RealRig]:
    _, key_path, _ = write_keys(tmp_path)
    config_path = write_config(
        tmp_path,
        URL,
        sounds_dir=SOUNDS,
        destinations={"100": "Local/echo@lab"},
        grace=1.0,
        user=USER,
        password=PASSWORD,
    )
    app = App(load_config(config_path))
    await app.startup()
    harness = AriClient(URL, USER, PASSWORD, HARNESS_APP)
    router = EventRouter()

    async def pump() -> None:
        async for item in harness.events():
            if isinstance(item, Event):
                router.dispatch(item)

    task = asyncio.create_task(pump())
    try:
        await asyncio.wait_for(app.connected.wait(), 10)
        yield RealRig(app, harness, router, tmp_path, [PrivateKey.load(key_path)])
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await harness.close()
        await app.shutdown()


async def test_real_pbx_implied_consent_is_recorded(real: RealRig) -> None:
    caller = await real.call("100", hangup_after=20.0)
    line = await real.wait_audit(caller)
    assert line["decision"] == "implied"
    path = line["path"]
    assert isinstance(path, str)
    result = verify(Path(path), real.keys)
    assert str(result.verdict) == "complete" and result.audio_seconds > 1.0


async def test_real_pbx_opt_out_is_not_recorded(real: RealRig) -> None:
    caller = await real.call("100", hangup_after=5.0, dtmf="2")
    line = await real.wait_audit(caller)
    assert line["decision"] == "declined-dtmf"
    assert line["recording_id"] is None
