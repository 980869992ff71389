"""The access log: every decrypt leaves a chained, verifiable line naming who, what and why."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest

from callrec.crypto.keys import PrivateKey
from callrec.dpo.access import ACCESS_LOG_ENV
from callrec.recording import read_header
from tests.callrec.cli_support import KeyPair, make_keys, run, sealed_recording


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


def _config(folder: Path, keys: KeyPair, extra: str = "") -> Path:
    path = folder / "callrec.toml"
    path.write_text(
        f'[recording]\nrecipients = ["{keys.pub}"]\n{extra}\n'
        f'[privacy]\naudit_log = "{folder / "log" / "audit.jsonl"}"\n'
    )
    return path


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_decrypt_with_a_config_logs_who_opened_which_recording_and_why(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = sealed_recording(tmp_path / "spool", "call", keys)
    config = _config(tmp_path, keys)
    result = run(
        capsys, "decrypt", recording, "--key", keys.key, "-o", tmp_path / "out.wav",
        "--reason", "ticket 4711", "--config", config,
    )  # fmt: skip
    assert result.code == 0, result.err
    assert (tmp_path / "out.wav").exists()
    access = tmp_path / "log" / "access.jsonl"  # the default: beside the audit log
    [line] = _lines(access)
    assert line["event"] == "access" and line["action"] == "decrypt"
    assert line["recordings"] == [read_header(recording).recording_id]
    assert line["reason"] == "ticket 4711"
    assert line["user"] == getpass.getuser()
    assert line["key_ids"] == [PrivateKey.load(keys.key).fingerprint]
    assert line["seq"] == 1
    assert oct(access.stat().st_mode & 0o777) == "0o600"

    verified = run(capsys, "audit", "verify", access)
    assert verified.code == 0, verified.out
    assert "chain intact: 1 line(s)" in verified.out


def test_access_lines_are_signed_with_the_recorders_key(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keygen", "--signing", "--out", tmp_path, "--name", "rec").code == 0
    signing = f'signing_key = "{tmp_path / "rec.sign.key"}"'
    access = tmp_path / "elsewhere" / "access.jsonl"
    config = _config(tmp_path, keys, signing)
    config.write_text(config.read_text() + f'[audit]\naccess_log = "{access}"\n')
    recording = sealed_recording(tmp_path / "spool", "call", keys)
    for n in range(2):
        out = tmp_path / f"out{n}.wav"
        result = run(
            capsys, "decrypt", recording, "--key", keys.key, "-o", out, "--config", config
        )
        assert result.code == 0, result.err
    assert [line["reason"] for line in _lines(access)] == [None, None]
    trusted = run(capsys, "audit", "verify", access, "--signer", tmp_path / "rec.sign.pub")
    assert trusted.code == 0, trusted.out
    assert "signatures: all 2 by trusted recorders" in trusted.out


def test_without_a_config_the_environment_names_the_log(
    tmp_path: Path,
    keys: KeyPair,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CALLREC_CONFIG", raising=False)
    recording = sealed_recording(tmp_path / "spool", "call", keys)
    plain = run(capsys, "decrypt", recording, "--key", keys.key, "-o", tmp_path / "a.wav")
    assert plain.code == 0 and plain.err == ""  # as decrypt always was
    unlogged = run(
        capsys, "decrypt", recording, "--key", keys.key, "-o", tmp_path / "b.wav",
        "--reason", "complaint 11",
    )  # fmt: skip
    assert unlogged.code == 0
    assert "--reason not recorded: this access is not in any access log" in unlogged.err
    assert (tmp_path / "b.wav").exists()

    laptop_log = tmp_path / "dpo-laptop" / "access.jsonl"
    monkeypatch.setenv(ACCESS_LOG_ENV, str(laptop_log))
    logged = run(
        capsys, "decrypt", recording, "--key", keys.key, "-o", tmp_path / "c.wav",
        "--reason", "complaint 12",
    )  # fmt: skip
    assert logged.code == 0, logged.err
    assert logged.err == ""
    [line] = _lines(laptop_log)
    assert line["reason"] == "complaint 12" and "sig" not in line


def test_an_access_log_that_cannot_be_written_stops_the_decrypt(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    recording = sealed_recording(tmp_path / "spool", "call", keys)
    config = _config(tmp_path, keys)
    (tmp_path / "log" / "access.jsonl").mkdir(parents=True)  # a folder where the file goes
    result = run(
        capsys, "decrypt", recording, "--key", keys.key, "-o", tmp_path / "out.wav",
        "--config", config,
    )  # fmt: skip
    assert result.code == 1
    assert "cannot write the access log, so nothing was done" in result.err
    assert not (tmp_path / "out.wav").exists()


@pytest.mark.parametrize("reason", ["", "   ", "two\nlines", "x" * 501])
def test_a_reason_that_says_nothing_is_a_usage_error(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str], reason: str
) -> None:
    recording = sealed_recording(tmp_path / "spool", "call", keys)
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "decrypt", recording, "--key", keys.key, "--reason", reason)
    assert exit_.value.code == 2
    assert "--reason: the reason" in capsys.readouterr().err
    assert not list((tmp_path / "spool").glob("*.wav"))


def test_audit_verify_names_any_signed_access_line_that_was_edited(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    # Signed, as on a recorder: each line's own signature names it. (Unsigned,
    # an edit shows at the next line's prev, and the last line's only by its head.)
    assert run(capsys, "keygen", "--signing", "--out", tmp_path, "--name", "rec").code == 0
    recording = sealed_recording(tmp_path / "spool", "call", keys)
    config = _config(tmp_path, keys, f'signing_key = "{tmp_path / "rec.sign.key"}"')
    for n in range(4):
        out = tmp_path / f"out{n}.wav"
        args = ("--reason", f"ticket {n}", "--config", config)
        assert run(capsys, "decrypt", recording, "--key", keys.key, "-o", out, *args).code == 0
    access = tmp_path / "log" / "access.jsonl"
    original = access.read_text().splitlines(keepends=True)
    for number in range(1, len(original) + 1):
        edited = list(original)
        line = json.loads(edited[number - 1])
        line["reason"] = "nothing to see"
        edited[number - 1] = json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n"
        access.write_text("".join(edited))
        result = run(capsys, "audit", "verify", access)
        assert result.code == 4, number
        assert result.out.startswith(f"{access}: line {number}: signature does not verify")
    access.write_text("".join(original))
    assert run(capsys, "audit", "verify", access).code == 0
