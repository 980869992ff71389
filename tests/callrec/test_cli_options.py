"""Options every command shares: ``-v``/``-q`` on either side of the subcommand, the
default config path, and log lines that journald files under the right priority."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from callrec.cli.common import CONFIG_ENV, DEFAULT_CONFIG
from callrec.logsetup import JournalFormatter
from tests.callrec.cli_support import CALLREC, KeyPair, make_keys, run, sealed_recording


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


@pytest.fixture
def cut(tmp_path: Path, keys: KeyPair) -> Path:
    """A recording a crash cut short: its reader logs the verdict at INFO."""
    data = sealed_recording(tmp_path, "whole", keys, 2.0).read_bytes()
    path = tmp_path / "cut.crec.part"
    path.write_bytes(data[:-2000])
    return path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    from ari_app.demo import write_config, write_keys, write_prompts

    sounds = tmp_path / "sounds"
    write_prompts(sounds, {})
    write_keys(tmp_path)
    return write_config(tmp_path, "http://127.0.0.1:1", sounds_dir=sounds, destinations={})


def _callrec(
    *argv: str | Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CALLREC), *map(str, argv)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


# --- -v and -q ----------------------------------------------------------------------


def _info_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if " INFO callrec.recording.reader: " in line]


@pytest.mark.parametrize(
    "argv",
    [("verify", "-v"), ("-v", "verify"), ("verify", "--verbose")],
    ids=["after", "before", "long-after"],
)
def test_verbose_works_before_and_after_the_subcommand(
    argv: tuple[str, ...], cut: Path, keys: KeyPair
) -> None:
    proc = _callrec(*argv, cut, "--key", keys.key)
    assert proc.returncode == 3
    [line] = _info_lines(proc.stderr)
    assert re.search(r" INFO callrec\.recording\.reader: recording \S+: truncated: \S", line)


def test_without_verbose_info_lines_stay_out(cut: Path, keys: KeyPair) -> None:
    proc = _callrec("verify", cut, "--key", keys.key)
    assert proc.returncode == 3
    assert _info_lines(proc.stderr) == []
    # -v before and -q after cancel out: back to warnings only.
    proc = _callrec("-v", "verify", "-q", cut, "--key", keys.key)
    assert proc.returncode == 3
    assert _info_lines(proc.stderr) == []


# --- journald -----------------------------------------------------------------------


def _journal(stderr_file: Path) -> dict[str, str]:
    """``$JOURNAL_STREAM`` as systemd sets it when stderr is the file's stream."""
    st = os.stat(stderr_file)
    return {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}


def _run_to_file(argv: list[str | Path], err: Path, env: dict[str, str]) -> int:
    with err.open("wb") as f:
        proc = subprocess.run(
            [str(CALLREC), *map(str, argv)],
            stdout=subprocess.DEVNULL,
            stderr=f,
            check=False,
            timeout=60,
            env={**os.environ, **env},
        )
    return proc.returncode


def test_under_journald_log_lines_carry_their_syslog_priority(
    tmp_path: Path, cut: Path, keys: KeyPair
) -> None:
    err = tmp_path / "journal"
    err.touch()
    assert _run_to_file(["verify", "-v", cut, "--key", keys.key], err, _journal(err)) == 3
    [line] = err.read_text().splitlines()
    # <6> is "info" to journald; journald stamps the time itself.
    assert line.startswith("<6>INFO callrec.recording.reader: recording ")
    assert ": truncated: " in line


def test_under_journald_a_command_that_fails_says_so_at_priority_err(tmp_path: Path) -> None:
    err = tmp_path / "journal"
    err.touch()
    missing = tmp_path / "nope.toml"
    assert _run_to_file(["serve", "--config", missing], err, _journal(err)) == 1
    lines = err.read_text().splitlines()
    # Every problem is a line of its own, and each is an error to journald.
    assert lines[0] == "<3>callrec serve: 1 configuration problem(s):"
    assert len(lines) > 1
    assert all(line.startswith("<3>") for line in lines), lines
    assert any(f"{missing}:(file): file does not exist" in line for line in lines[1:])


def test_a_journal_stream_that_is_not_stderr_changes_nothing(
    tmp_path: Path, cut: Path, keys: KeyPair
) -> None:
    """A child of a service inherits $JOURNAL_STREAM with its stderr sent elsewhere."""
    other = tmp_path / "other"
    other.touch()
    err = tmp_path / "stderr"
    assert _run_to_file(["verify", "-v", cut, "--key", keys.key], err, _journal(other)) == 3
    [line] = err.read_text().splitlines()
    assert not line.startswith("<")
    assert " INFO callrec.recording.reader: recording " in line
    assert line[:4].isdigit()  # starts with the time, as on a terminal


def test_journal_formatter_keeps_the_priority_on_every_line_of_a_traceback() -> None:
    try:
        raise ValueError("first line\nsecond line")
    except ValueError:
        record = logging.LogRecord(
            "callrec.x", logging.ERROR, __file__, 1, "failed: %s", ("why",), sys.exc_info()
        )
    lines = JournalFormatter().format(record).splitlines()
    assert lines[0] == "<3>ERROR callrec.x: failed: why"
    assert len(lines) > 3
    assert all(line.startswith("<3>") for line in lines)
    assert lines[-1] == "<3>second line"
    record = logging.LogRecord("callrec.x", logging.WARNING, __file__, 1, "late", (), None)
    assert JournalFormatter().format(record) == "<4>WARNING callrec.x: late"


# --- the default config path --------------------------------------------------------


def test_check_config_reads_the_config_named_by_the_environment(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    result = run(capsys, "check-config")
    assert (result.code, result.out) == (0, "ok\n")


def test_a_missing_config_from_the_environment_names_the_path_and_the_way_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "gone.toml"
    monkeypatch.setenv(CONFIG_ENV, str(missing))
    result = run(capsys, "check-config")
    assert result.code == 1
    assert result.err == (
        f"callrec check-config: no config file at {missing} (from ${CONFIG_ENV}): "
        f"give FILE or set {CONFIG_ENV}\n"
    )
    result = run(capsys, "prompts", "check")
    assert result.code == 1
    assert result.err.startswith(f"callrec prompts: no config file at {missing} (from $")
    assert "give --config FILE or set CALLREC_CONFIG" in result.err


def test_without_config_or_environment_the_default_is_tried_and_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if DEFAULT_CONFIG.exists():
        pytest.skip(f"{DEFAULT_CONFIG} exists on this machine")
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    result = run(capsys, "serve")
    assert result.code == 1
    assert result.err == (
        f"callrec serve: no config file at {DEFAULT_CONFIG} (the default): "
        f"give --config FILE or set {CONFIG_ENV}\n"
    )


def test_an_explicit_config_wins_over_the_environment(
    tmp_path: Path,
    config: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(tmp_path / "gone.toml"))
    assert run(capsys, "check-config", config).out == "ok\n"
    # The config's sounds tree holds the WAVs only: what prompts check misses is there.
    result = run(capsys, "prompts", "check", "--config", config)
    assert result.code == 1
    assert "missing: en/callrec/disclosure .sln16, .ulaw, .alaw" in result.out
    assert result.err == f"3 prompt(s) incomplete under {config.parent / 'sounds'}\n"


def test_prompts_list_looks_where_the_configured_asterisk_plays_from(
    config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(config))
    result = run(capsys, "prompts", "list")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "en:"
    assert "callrec/disclosure" in result.out
