"""Shared set-up for the AGI tests: a config with real prompt files, a FastAGI server."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from agi.fastagi import AgiHandler, FastAgiServer
from agi.gate import AgiConsent
from agi.protocol import AgiConnection, AgiEnvironment
from ari_app.demo import write_keys
from callrec.clock import ManualClock
from callrec.config import Config, ConsentConfig, PromptsConfig
from callrec.crypto.keys import PrivateKey
from tests.agi.agiclient import ChannelModel, FakeAsterisk, run_session

PSEUDONYM_KEY = bytes(range(32))
PROMPT_SECONDS = 3.0


def write_prompts(sounds: Path, languages: tuple[str, ...] = ("en", "de")) -> None:
    for lang in languages:
        for name in ("disclosure", "not-available", "recording-unavailable"):
            path = sounds / lang / "callrec" / f"{name}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f"RIFF-{name}-{lang}".encode())


@dataclasses.dataclass
class ConfigFiles:
    """A callrec.toml with its own key pair, pseudonym key, spool and audit log."""

    config: Path
    audit: Path
    key: PrivateKey


def write_config_files(
    folder: Path,
    *,
    sounds: Path,
    grace: float,
    languages: tuple[str, ...] = ("en", "de"),
    ari: str = 'password = "not-used-by-the-classic-script"',
) -> ConfigFiles:
    pub, key_path, pseudo = write_keys(folder)
    (folder / "spool").mkdir(exist_ok=True)
    audit = folder / "audit.jsonl"
    config = folder / "callrec.toml"
    config.write_text(
        f"""
[ari]
{ari}
[recording]
spool = "{folder / "spool"}"
recipients = ["{pub}"]
[privacy]
pseudonym_key = "{pseudo}"
audit_log = "{audit}"
[consent]
grace = {grace}
[prompts]
sounds_dir = "{sounds}"
languages = {json.dumps(list(languages))}
"""
    )
    return ConfigFiles(config, audit, PrivateKey.load(key_path))


def sound_name(sounds: Path, lang: str) -> str:
    """What STREAM FILE is asked to play: the absolute path without extension."""
    return str(sounds / lang / "callrec" / "disclosure")


@pytest.fixture
def sounds(tmp_path: Path) -> Path:
    path = tmp_path / "sounds"
    write_prompts(path)
    return path


@pytest.fixture
def config(sounds: Path) -> Config:
    return Config(
        prompts=PromptsConfig(sounds_dir=sounds, languages=("en", "de")),
        consent=ConsentConfig(grace=2.0),
    )


def with_consent(config: Config, **changes: Any) -> Config:
    return dataclasses.replace(config, consent=dataclasses.replace(config.consent, **changes))


class AuditRecorder:
    """Collects audit lines as AuditLog.append would receive them."""

    def __init__(self) -> None:
        self.lines: list[tuple[dict[str, Any], dict[str, str]]] = []

    def __call__(self, record: dict[str, Any], personal: dict[str, str]) -> None:
        self.lines.append((record, personal))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def audit() -> AuditRecorder:
    return AuditRecorder()


async def consent_session(
    config: Config,
    clock: ManualClock,
    audit: AuditRecorder,
    env: dict[str, str] | None = None,
    model: ChannelModel | None = None,
    read_timeout: float = 10.0,
) -> tuple[FakeAsterisk, ChannelModel, AgiConsent]:
    """One /consent call from a fake Asterisk to a FastAGI server on 127.0.0.1:0."""
    consent = AgiConsent(config, PSEUDONYM_KEY, clock, audit=audit)

    async def run(agi: AgiConnection, env: AgiEnvironment) -> None:
        await consent.run(agi, env)

    def factory(env: AgiEnvironment) -> AgiHandler | None:
        return run if env.network_script == "consent" else None

    server = FastAgiServer(factory, "127.0.0.1", 0, read_timeout=read_timeout)
    await server.start()
    try:
        if model is None:
            model = ChannelModel()
        model.clock = clock
        if not model.sounds:
            sounds = config.prompts.sounds_dir
            model.sounds = {sound_name(sounds, lang): PROMPT_SECONDS for lang in ("en", "de")}
        client, done = await run_session(server.port, env, model)
    finally:
        await server.stop()
    return client, done, consent
