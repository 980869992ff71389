"""``callrec check-config``, ``callrec serve`` and ``callrec demo`` as a user runs them."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
import soundfile as sf

from ari_app.app import App
from ari_app.demo import run_demo
from callrec.cli import main
from tests.ari_app.conftest import Rig


def test_check_config_says_ok_for_a_good_file(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(rig.config_path)]) == 0
    assert capsys.readouterr().out == "ok\n"


def test_check_config_lists_every_problem_with_file_and_key(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    text = rig.config_path.read_text()
    text = text.replace('format = "ulaw"', 'format = "mp3"').replace("grace = 0.3", "grace = -1")
    bad = rig.out / "bad.toml"
    bad.write_text(text)
    assert main(["check-config", str(bad)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith(f"{bad}:recording.format: ") for line in lines)
    assert any(line.startswith(f"{bad}:consent.grace: ") for line in lines)


def test_serve_refuses_a_broken_config(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    missing = rig.out / "nope.toml"
    assert main(["serve", "--config", str(missing)]) == 1
    assert f"{missing}:(file): file does not exist" in capsys.readouterr().err


async def test_sigterm_stops_the_app_and_restores_signal_handlers(rig: Rig) -> None:
    before = signal.getsignal(signal.SIGTERM)
    app = App(rig.config)
    run = asyncio.create_task(app.run())
    await asyncio.wait_for(app.connected.wait(), 10)
    assert signal.getsignal(signal.SIGTERM) != before
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(run, 10)
    assert signal.getsignal(signal.SIGTERM) == before
    assert not rig.sim.engine.app_active("callrec")


async def test_demo_records_verifies_and_decrypts_its_four_calls(tmp_path: Path) -> None:
    result = await run_demo(tmp_path / "demo", disclosure_seconds=1.0)
    assert result.ok
    rows = {row[0]: row for row in result.rows}
    _, decision, seconds, verdict, _ = rows["implied consent"]
    assert (decision, verdict) == ("implied", "complete")
    assert float(seconds) > 1.0
    assert rows["hang-up during disclosure"][1] == "declined-hangup"
    assert rows["opt-out digit 2"][1] == "declined-dtmf"
    assert rows["destination busy"][3] == "not recorded: destination-unavailable"
    wav = Path(rows["implied consent"][4])
    info = sf.info(str(wav))
    assert info.samplerate == 8000 and info.frames > 8000
    assert any("implied consent" in line for line in result.lines())
