"""``callrec-agi`` as Asterisk runs it: a process, the environment on stdin, SIGHUP on hang-up.

Real time here (the script uses the system clock), so prompts and grace
are short. Asterisk's side is the same channel model as the FastAGI tests;
for a classic AGI a hang-up is a SIGHUP to the script, not a HANGUP line.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from callrec.audit import open_personal, read_audit
from callrec.crypto.keys import PrivateKey
from tests.agi.agiclient import Caller, ChannelModel, asterisk_env_block, parse_args
from tests.agi.conftest import sound_name, write_config_files, write_prompts

SCRIPT = Path(sys.executable).parent / "callrec-agi"
ROOT = Path(__file__).resolve().parents[2]
PROMPT = 0.3
HOSTILE_NAME = 'Evil\x1b[2J\x07 "name" ../../etc/passwd'


@dataclass
class Setup:
    config: Path
    audit: Path
    key: PrivateKey
    sounds: Path


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    sounds = tmp_path / "sounds"
    write_prompts(sounds)
    files = write_config_files(tmp_path, sounds=sounds, grace=0.3)
    return Setup(files.config, files.audit, files.key, sounds)


@dataclass
class Run:
    model: ChannelModel
    returncode: int
    stderr: str


async def run_script(setup: Setup, model: ChannelModel, env: dict[str, str] | None = None) -> Run:
    """Drive ``callrec-agi`` like Asterisk: env block, then answer each command."""
    if not model.sounds:
        model.sounds = {sound_name(setup.sounds, "en"): PROMPT}
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        "--config",
        str(setup.config),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        # The console script as installed, importing this checkout.
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    assert proc.stderr is not None
    base = {"agi_network": "", "agi_network_script": "", "agi_request": "callrec-agi"}
    block = asterisk_env_block({**base, **(env or {})})
    proc.stdin.write(block.replace(b"agi_network: \nagi_network_script: \n", b""))
    await proc.stdin.drain()
    while raw := await asyncio.wait_for(proc.stdout.readline(), 20):
        before = model.now
        lines = model.respond(parse_args(raw.decode().rstrip("\n")))
        # The channel really spends that time (prompt playing, WAIT FOR DIGIT).
        await asyncio.sleep(model.now - before)
        if "HANGUP" in lines:
            proc.send_signal(signal.SIGHUP)
            await asyncio.sleep(0.05)
        reply = "".join(line + "\n" for line in lines if line != "HANGUP")
        proc.stdin.write(reply.encode())
        await proc.stdin.drain()
    proc.stdin.close()
    stderr = (await proc.stderr.read()).decode()
    return Run(model, await proc.wait(), stderr)


async def test_caller_who_stays_is_implied_and_audited(setup: Setup) -> None:
    run = await run_script(setup, ChannelModel())
    assert run.returncode == 0, run.stderr
    assert run.model.variables["CALLREC_CONSENT"] == "implied"
    assert run.model.variables["CALLREC_CONNECT"] == "yes"
    (line,) = list(read_audit(setup.audit))
    assert line["decision"] == "implied"
    assert line["call_id"] == run.model.variables["CALLREC_ID"]
    assert line["evidence"]["frontend"] == "agi"
    assert open_personal(line, [setup.key])["caller_number"] == "+4930123456"


async def test_hangup_during_the_disclosure_is_a_sighup(setup: Setup) -> None:
    run = await run_script(setup, ChannelModel(caller=Caller(hangup_at=0.1)))
    assert run.model.variables["CALLREC_CONSENT"] == "declined-hangup"
    assert run.model.variables["CALLREC_CONNECT"] == "no"
    (line,) = list(read_audit(setup.audit))
    assert line["decision"] == "declined-hangup"


async def test_hangup_in_the_grace_period(setup: Setup) -> None:
    run = await run_script(setup, ChannelModel(caller=Caller(hangup_at=PROMPT + 0.1)))
    assert run.model.variables["CALLREC_CONSENT"] == "declined-hangup"


async def test_opt_out_digit(setup: Setup) -> None:
    run = await run_script(setup, ChannelModel(caller=Caller(digit="2", digit_at=0.1)))
    assert run.model.variables["CALLREC_CONSENT"] == "declined-dtmf"


async def test_hostile_caller_never_reaches_stderr_or_the_audit_in_clear(setup: Setup) -> None:
    env = {"agi_calleridname": HOSTILE_NAME, "agi_callerid": "../../etc/passwd"}
    run = await run_script(setup, ChannelModel(), env)
    assert run.model.variables["CALLREC_CONSENT"] == "implied"
    assert "passwd" not in run.stderr
    assert "\x1b" not in run.stderr
    text = setup.audit.read_text()
    assert "passwd" not in text
    assert "Evil" not in text
    (line,) = list(read_audit(setup.audit))
    assert open_personal(line, [setup.key])["caller_name"] == HOSTILE_NAME


async def test_bad_config_sets_an_error_and_fails(setup: Setup) -> None:
    setup.config.write_text("[consent]\ngrace = -1\n")
    run = await run_script(setup, ChannelModel())
    assert run.returncode == 1
    assert run.model.variables == {"CALLREC_ERROR": "config"}
    assert "consent.grace" in run.stderr


async def test_unwritable_audit_log_still_answers_the_dialplan(setup: Setup) -> None:
    text = setup.config.read_text().replace(str(setup.audit), "/dev/full")
    setup.config.write_text(text)
    run = await run_script(setup, ChannelModel())
    assert run.returncode == 0
    assert run.model.variables["CALLREC_CONSENT"] == "implied"
    assert "audit" in run.stderr


def test_pyst2_still_offers_what_the_script_uses() -> None:
    from asterisk.agi import AGI, AGISIGHUPHangup

    assert callable(AGI.send_command)
    assert callable(AGI.test_hangup)
    assert issubclass(AGISIGHUPHangup, Exception)
    assert json.dumps({"ok": True})


async def test_script_needs_no_ari_password(setup: Setup) -> None:
    """agi-bin runs as the Asterisk user: its config may leave the ARI secret out."""
    text = setup.config.read_text()
    stripped = "\n".join(
        line for line in text.splitlines() if not line.strip().startswith("password")
    )
    assert stripped != text
    setup.config.write_text(stripped)
    run = await run_script(setup, ChannelModel())
    assert run.returncode == 0, run.stderr
    assert run.model.variables["CALLREC_CONSENT"] == "implied"
