"""`callrec testcall` as an admin types it."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from callrec.cli import main


def test_list_names_every_scenario_and_what_it_proves(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testcall", "--list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["stay", "hangup", "optout", "long"]
    assert all(len(line.split(maxsplit=1)[1]) > 20 for line in lines)


def test_placing_calls_needs_a_target_and_a_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["testcall", "--spool", "/tmp", "--audit", "/tmp/a"]) == 1
    assert "--target and --key are needed" in capsys.readouterr().err


def test_unknown_scenario_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from callrec.crypto.keys import PrivateKey

    key = tmp_path / "k.key"
    PrivateKey.generate().save(key)
    argv = ["testcall", "--target", "127.0.0.1:5", "--key", str(key), "--scenario", "nope"]
    code = main([*argv, "--spool", str(tmp_path), "--audit", str(tmp_path / "a.jsonl")])
    assert code == 1
    assert "unknown scenario 'nope'" in capsys.readouterr().err


def test_timing_follows_the_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --config the scenarios wait out that config's disclosure and grace."""
    from ari_app.demo import write_config, write_keys, write_prompts

    sounds = tmp_path / "sounds"
    write_prompts(sounds, {"disclosure": 2.0, "not-available": 0.4, "recording-unavailable": 0.4})
    write_keys(tmp_path)
    config = write_config(
        tmp_path, "http://127.0.0.1:1", sounds_dir=sounds, destinations={}, grace=1.5
    )
    from callrec.testcall.options import config_for, scenarios_for

    args = argparse.Namespace(
        config=str(config),
        exten="100",
        grace=None,
        optout_digit=None,
        disclosure=None,
        hangup_at=1.0,
        digit_at=1.0,
        talk=5.0,
        long=30.0,
    )
    scenarios = scenarios_for(args, config_for(args))
    assert scenarios["stay"].hold == pytest.approx(2.0 + 1.5 + 5.0, abs=0.05)
    assert scenarios["long"].hold == pytest.approx(2.0 + 1.5 + 30.0, abs=0.05)
