"""``callrec demo``: four calls through the built-in ARI simulator, end to end.

Everything runs on loopback in this process: the simulator (REST, events
websocket, real RTP), the Stasis app with its media recorder, a throwaway
key pair. Afterwards each recording is verified and decrypted with the
private key, as an administrator would, and a table says what happened.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import soundfile as sf

from ari_app.app import App
from callrec.ari.sim import AriSimulator, CallerScenario, EndpointBehaviour
from callrec.audio import AudioSink
from callrec.audit import read_audit
from callrec.config import load_config
from callrec.crypto.keys import PrivateKey
from callrec.decode import decode_recording
from callrec.media.signals import speech_like
from callrec.spool import make_private_dirs

RATE = 8000
SIM_USER = "callrec"
SIM_PASSWORD = "callrec-secret"  # noqa: S105 (the simulator's fixed demo login)
PROMPT_NAMES = ("disclosure", "not-available", "recording-unavailable")
# Seconds the demo waits for its calls before giving up (the README promises < 60 s).
DEMO_TIMEOUT = 50.0
GRACE = 0.5


@dataclass(frozen=True)
class DemoCall:
    label: str
    scenario: CallerScenario
    decision: str
    recorded: bool = False


def write_prompts(sounds_dir: Path, seconds: dict[str, float]) -> None:
    """Short prompts (``en/callrec/*.wav``) so the demo and the tests run fast."""
    folder = sounds_dir / "en" / "callrec"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(PROMPT_NAMES):
        samples = speech_like(seconds.get(name, 1.0), seed=100 + i)
        sf.write(str(folder / f"{name}.wav"), samples, RATE, subtype="PCM_16")


def write_keys(out: Path) -> tuple[Path, Path, Path]:
    """A throwaway recipient key pair and pseudonym key; returns (pub, key, pseudonym)."""
    key = PrivateKey.generate()
    key_path, pub_path, pseudo = out / "demo.key", out / "demo.pub", out / "pseudonym.key"
    for path in (key_path, pub_path, pseudo):
        path.unlink(missing_ok=True)
    key.save(key_path)
    pub_path.write_text(key.public_key().to_text(), encoding="ascii")
    fd = os.open(pseudo, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(32))
    return pub_path, key_path, pseudo


def write_config(
    out: Path,
    ari_url: str,
    *,
    sounds_dir: Path,
    destinations: dict[str, str],
    grace: float = GRACE,
    on_failure: str = "best-effort",
    spool: Path | None = None,
    user: str = SIM_USER,
    password: str = SIM_PASSWORD,
) -> Path:
    """A callrec.toml pointing at ``ari_url`` with everything else under ``out``."""
    pub, _, pseudo = out / "demo.pub", out / "demo.key", out / "pseudonym.key"
    dest = "\n".join(
        f'"{number}" = {{ endpoint = "{endpoint}", timeout = 5 }}'
        for number, endpoint in destinations.items()
    )
    text = f"""\
[ari]
url = "{ari_url}"
user = "{user}"
password = "{password}"
app = "callrec"

[recording]
spool = "{spool or out / "spool"}"
recipients = ["{pub}"]
format = "ulaw"
fsync_interval = 1.0
on_failure = "{on_failure}"

[privacy]
pseudonym_key = "{pseudo}"
audit_log = "{out / "audit.jsonl"}"

[consent]
mode = "implied"
grace = {grace}
optout_digit = "2"

[prompts]
sounds_dir = "{sounds_dir}"
languages = ["en"]
default_language = "en"

[destinations]
{dest}

[agi]
listen = "127.0.0.1:0"

[catalog]
url = "sqlite:catalog.sqlite3"

[control]
# None: a demo (or a test) must not take the control socket of a real serve.
socket = ""
"""
    path = out / "callrec.toml"
    path.write_text(text, encoding="utf-8")
    return path


def audit_by_channel(path: Path) -> dict[Any, dict[str, Any]]:
    """The audit lines written so far (the core's parser), by channel."""
    if not path.exists():
        return {}
    return {line.get("channel"): line for line in read_audit(path)}


def demo_calls(voice: Path, disclosure: float) -> list[DemoCall]:
    talk = disclosure + GRACE + 3.0
    return [
        DemoCall(
            "implied consent",
            CallerScenario(exten="100", audio=voice, hangup_after=talk),
            "implied",
            recorded=True,
        ),
        DemoCall(
            "hang-up during disclosure",
            CallerScenario(exten="100", audio=voice, hangup_after=disclosure / 2),
            "declined-hangup",
        ),
        DemoCall(
            "opt-out digit 2",
            CallerScenario(exten="100", audio=voice, dtmf=[(0.6, "2")], hangup_after=talk),
            "declined-dtmf",
        ),
        DemoCall("destination busy", CallerScenario(exten="200", audio=voice), "implied"),
    ]


@dataclass(frozen=True)
class DemoFiles:
    out: Path
    sounds: Path
    voice: Path
    key: Path


def prepare(out: Path, disclosure_seconds: float) -> DemoFiles:
    """Keys, prompts and the caller's voice in ``out``; a previous run's audit log removed."""
    out = out.resolve()
    make_private_dirs(out)
    sounds = out / "sounds"
    write_prompts(sounds, {"disclosure": disclosure_seconds, "not-available": 1.0})
    voice = out / "caller-voice.wav"
    sf.write(str(voice), speech_like(30.0), RATE, subtype="PCM_16")
    _, key_path, _ = write_keys(out)
    (out / "audit.jsonl").unlink(missing_ok=True)
    return DemoFiles(out, sounds, voice, key_path)


async def run_demo(out: Path, *, disclosure_seconds: float = 3.0) -> DemoResult:
    """Run the demo into ``out``: keys, config, spool, audit log and WAVs land there."""
    files = prepare(out, disclosure_seconds)
    sim = AriSimulator(user=SIM_USER, password=SIM_PASSWORD, sounds_dir=files.sounds)
    await sim.start()
    try:
        sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.3))
        sim.add_endpoint("PJSIP/busy", EndpointBehaviour(kind="busy", answer_after=0.3))
        config_path = write_config(
            files.out,
            sim.url,
            sounds_dir=files.sounds,
            destinations={"100": "PJSIP/agent", "200": "PJSIP/busy"},
        )
        calls = demo_calls(files.voice, disclosure_seconds)
        rows = await _run_calls(sim, config_path, calls)
    finally:
        await sim.stop()
    return _report(files.out, rows, [PrivateKey.load(files.key)])


async def _run_calls(
    sim: AriSimulator, config_path: Path, calls: list[DemoCall]
) -> list[tuple[DemoCall, dict[str, Any] | None]]:
    config = load_config(config_path)
    app = App(config)
    await app.startup()
    try:
        await asyncio.wait_for(app.connected.wait(), 10)
        ids = [sim.place_call(call.scenario) for call in calls]
        audit_path = config.privacy.audit_log
        deadline = asyncio.get_running_loop().time() + DEMO_TIMEOUT
        lines = audit_by_channel(audit_path)
        while not all(i in lines for i in ids) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
            lines = audit_by_channel(audit_path)
        return [(call, lines.get(i)) for call, i in zip(calls, ids, strict=True)]
    finally:
        await app.shutdown()


@dataclass
class DemoResult:
    """The demo's table rows (call, decision, seconds, verdict, WAV) and whether all passed."""

    rows: list[tuple[str, str, str, str, str]]
    ok: bool
    out: Path

    def lines(self) -> list[str]:
        table = [("call", "decision", "recorded s", "verified", "WAV"), *self.rows]
        widths = [max(len(row[i]) for row in table) for i in range(5)]
        text = [
            "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in table
        ]
        text += ["", f"spool: {self.out / 'spool'}", f"audit log: {self.out / 'audit.jsonl'}"]
        return text


def _report(
    out: Path, calls: list[tuple[DemoCall, dict[str, Any] | None]], keys: list[PrivateKey]
) -> DemoResult:
    rows: list[tuple[str, str, str, str, str]] = []
    ok = True
    for call, line in calls:
        if line is None:
            rows.append((call.label, "(no audit line)", "-", "-", "-"))
            ok = False
            continue
        decision = str(line.get("decision"))
        recorded = line.get("recording_id") is not None and bool(line.get("sealed"))
        ok = ok and decision == call.decision and recorded == call.recorded
        if not recorded:
            end = str(line.get("end"))
            note = (
                "not recorded" if end in ("caller-hangup", "declined") else f"not recorded: {end}"
            )
            rows.append((call.label, decision, "-", note, "-"))
            continue
        # One decryption: decoding verifies as it reads (its verdict).
        decoded = decode_recording(Path(line["path"]), keys)
        wav = out / f"{line['recording_id']}.wav"
        with AudioSink(wav, decoded.rate, decoded.channels) as sink:  # 0600, like decrypt
            sink.write(decoded.samples)
        ok = ok and str(decoded.verdict) == "complete"
        seconds = f"{len(decoded.samples) / decoded.rate:.2f}"
        rows.append((call.label, decision, seconds, str(decoded.verdict), str(wav)))
    return DemoResult(rows, ok, out)
