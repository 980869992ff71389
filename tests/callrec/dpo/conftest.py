"""A recorder for the DPO tests: the end-to-end rig (simulator + app) with a catalogue.

The config adds what the DPO tools read: a SQLite catalogue under the test's
folder with a recorder id, a retention of 30 days with 365 for calls to
100, and a recorder signing key (so every audit and access line is signed).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ari_app.demo import SIM_PASSWORD, SIM_USER, write_config
from callrec.ari.sim import AriSimulator, EndpointBehaviour
from callrec.catalog import Catalog
from callrec.crypto.keys import PrivateKey
from callrec.crypto.signing import SigningKey
from tests.ari_app.conftest import GRACE, Rig, make_rig_files
from tests.callrec.dpo.recorders import Recorder

RECORDER = "rec-a"
DAYS = 30
DAYS_FOR_100 = 365


@dataclass
class Office(Rig):
    """The rig, plus where the DPO's things are."""

    @property
    def access_path(self) -> Path:
        return self.out / "access.jsonl"

    @property
    def key_path(self) -> Path:
        return self.out / "demo.key"

    @property
    def signer_pub(self) -> Path:
        return self.out / "rec.sign.pub"

    def catalog(self) -> Catalog:
        return Catalog.from_config(self.config)

    def enter_calls(self) -> None:
        """Enter every audit line into the catalogue, as ``callrec serve`` does (idempotent)."""
        catalog = self.catalog()
        try:
            for line in self.audit():
                catalog.record_call(line)
        finally:
            catalog.close()


def _signing_key(out: Path) -> Path:
    key = SigningKey.generate()
    key.save(out / "rec.sign.key")
    (out / "rec.sign.pub").write_text(key.public_key().to_text())
    return out / "rec.sign.key"


@pytest.fixture
async def office(tmp_path: Path) -> AsyncIterator[Office]:
    sounds, keys, voice, voice_path = make_rig_files(tmp_path)
    sim = AriSimulator(user=SIM_USER, password=SIM_PASSWORD, sounds_dir=sounds)
    await sim.start()
    sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1))
    config_path = write_config(
        tmp_path,
        sim.url,
        sounds_dir=sounds,
        destinations={"100": "PJSIP/agent", "400": "PJSIP/agent"},
        grace=GRACE,
    )
    text = config_path.read_text().replace(
        "[recording]\n", f'[recording]\nsigning_key = "{_signing_key(tmp_path)}"\n'
    )
    # The demo's catalogue (a SQLite file beside the config), as recorder RECORDER.
    catalog = "[catalog]\n"
    if catalog not in text:
        text += f'\n{catalog}url = "sqlite:catalog.sqlite3"\n'
    text = text.replace(catalog, f'{catalog}recorder_id = "{RECORDER}"\n')
    config_path.write_text(
        text
        + f'\n[retention]\ndays = {DAYS}\n\n[retention.numbers."100"]\ndays = {DAYS_FOR_100}\n'
    )
    office = Office(sim, tmp_path, config_path, keys, voice, voice_path)
    try:
        await office.start_app()
        yield office
    finally:
        for app in office.apps:
            await app.shutdown()
        await sim.stop()


@pytest.fixture
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture
def recorders(tmp_path: Path, key: PrivateKey) -> tuple[Recorder, Recorder]:
    shared = tmp_path / "shared"
    shared.mkdir()
    return (
        Recorder.make(tmp_path / "a", "rec-a", shared, key),
        Recorder.make(tmp_path / "b", "rec-b", shared, key),
    )
