"""Each command loads only what it uses: ``callrec --help`` is quick, no command but
``prompts add`` pays for the prompt converter (scipy and pyloudnorm take seconds).

Every run is a fresh interpreter that lists the modules it imported when it
exits (``cli_support.ModuleSpy``); ``serve`` is checked during a real call in
``tests/ari_app/test_cli_serve.py``. How long ``--help`` takes is measured
in ``bench/bench_cli.py``, not here.
"""

from __future__ import annotations

import argparse
import functools
import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

from callrec.cli import COMMANDS, main
from tests.callrec.cli_support import (
    Child,
    KeyPair,
    ModuleSpy,
    make_keys,
    run_child,
    sealed_recording,
)

CONVERTER = ("scipy", "pyloudnorm")
# What --help must not wait for: audio and crypto libraries, asyncio, the front ends.
NOT_FOR_HELP = (*CONVERTER, "numpy", "soundfile", "cryptography", "asyncio", "aiohttp")
FRONT_ENDS = ("ari_app", "agi")


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


@pytest.fixture
def recording(tmp_path: Path, keys: KeyPair) -> Path:
    return sealed_recording(tmp_path, "call", keys)


@pytest.fixture
def callrec(tmp_path: Path) -> Callable[..., Child]:
    """``callrec ARGV`` in a fresh interpreter that reports the modules it imported."""
    spy = ModuleSpy.install(tmp_path / "spy")
    return functools.partial(run_child, spy)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    from ari_app.demo import write_config, write_keys, write_prompts

    sounds = tmp_path / "sounds"
    write_prompts(sounds, {})
    write_keys(tmp_path)
    return write_config(tmp_path, "http://127.0.0.1:1", sounds_dir=sounds, destinations={})


def test_help_lists_every_command_without_loading_any_of_them(
    callrec: Callable[..., Child],
) -> None:
    ran = callrec("--help")
    assert ran.code == 0, ran.err
    listed = [line.split()[0] for line in ran.out.splitlines() if line.startswith("    ")]
    assert [name for name in listed if name in COMMANDS] == list(COMMANDS)
    heavy = [name for name in (*NOT_FOR_HELP, *FRONT_ENDS) if ran.loaded(name)]
    assert heavy == []
    commands = sorted(m for m in ran.modules if m.startswith("callrec.cli."))
    assert commands == []


@pytest.mark.parametrize("command", ["check-config", "verify", "inspect", "serve", "prompts"])
def test_a_command_s_help_loads_no_audio_or_crypto_library(
    command: str, callrec: Callable[..., Child]
) -> None:
    ran = callrec(command, "--help")
    assert ran.code == 0, ran.err
    assert ran.out.startswith(f"usage: callrec {command} ")
    assert [name for name in NOT_FOR_HELP if ran.loaded(name)] == []


def test_check_config_checks_without_the_prompt_converter(
    config: Path, callrec: Callable[..., Child]
) -> None:
    ran = callrec("check-config", config)
    assert (ran.code, ran.out) == (0, "ok\n"), ran.err
    assert [name for name in (*CONVERTER, *FRONT_ENDS) if ran.loaded(name)] == []


def test_verify_and_inspect_read_recordings_without_the_prompt_converter(
    recording: Path, keys: KeyPair, callrec: Callable[..., Child]
) -> None:
    verified = callrec("verify", recording, "--key", keys.key)
    assert verified.code == 0, verified.err
    assert verified.out.splitlines()[-1] == "1 file: 1 complete"
    inspected = callrec("inspect", recording)
    assert inspected.code == 0, inspected.err
    assert "recording_id:" in inspected.out
    for ran in (verified, inspected):
        assert [name for name in (*CONVERTER, *FRONT_ENDS) if ran.loaded(name)] == []


def test_only_the_running_command_s_module_is_loaded(
    recording: Path, keys: KeyPair, callrec: Callable[..., Child]
) -> None:
    ran = callrec("verify", recording, "--key", keys.key)
    assert ran.code == 0, ran.err
    commands = {m for m in ran.modules if m.startswith("callrec.cli.")}
    assert commands == {"callrec.cli.common", "callrec.cli.verify_cmds"}


def test_each_module_registers_exactly_the_commands_the_table_gives_it() -> None:
    modules = {module for module, _ in COMMANDS.values()}
    for module in sorted(modules):
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"callrec.cli.{module}").register(sub)
        expected = {name for name, (owner, _) in COMMANDS.items() if owner == module}
        assert set(sub.choices or ()) == expected, module


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_answers_help(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: callrec {command} [-h] [-v] [-q]")
