"""``[recording] signing_key``: loaded for the recorder, and every unusable key reported."""

from __future__ import annotations

from pathlib import Path

from callrec.config import check_config, load_config
from callrec.crypto.signing import SigningKey
from tests.callrec.test_config import shipped_in

COMMENTED = '# signing_key = "/etc/callrec/recorder.sign.key"'


def _config(tmp_path: Path, key: Path) -> Path:
    return shipped_in(tmp_path, **{COMMENTED: f'signing_key = "{key}"'})


def _problems(path: Path) -> list[str]:
    return [f"{p.key}: {p.message} (hint: {p.hint})" for p in check_config(path, env={})]


def test_the_shipped_config_signs_nothing(tmp_path: Path) -> None:
    config = load_config(shipped_in(tmp_path), env={})
    assert config.recording.signing_key is None
    assert config.recording_signer() is None


def test_a_configured_key_is_the_recorder_signer(tmp_path: Path) -> None:
    key = SigningKey.generate()
    key_path = tmp_path / "recorder.sign.key"
    key.save(key_path)
    path = _config(tmp_path, key_path)
    assert _problems(path) == []
    signer = load_config(path, env={}).recording_signer()
    assert signer is not None and signer.public_key() == key.public_key()


def test_relative_paths_are_taken_from_the_config_folder(tmp_path: Path) -> None:
    SigningKey.generate().save(tmp_path / "recorder.sign.key")
    config = load_config(_config(tmp_path, Path("recorder.sign.key")), env={})
    assert config.recording.signing_key == tmp_path / "recorder.sign.key"


def test_check_config_names_every_unusable_signing_key(tmp_path: Path) -> None:
    key_path = tmp_path / "recorder.sign.key"
    path = _config(tmp_path, key_path)
    create = "create it with `callrec keygen --signing --out DIR --name NAME`"
    assert _problems(path) == [
        f"recording.signing_key: {key_path}: file does not exist (hint: {create})"
    ]

    key_path.write_text(SigningKey.generate().public_key().to_text())  # the .pub by mistake
    assert _problems(path) == [
        f"recording.signing_key: {key_path}: not a callrec signing key (create one with "
        f"`callrec keygen --signing`) (hint: {create})"
    ]

    key_path.unlink()
    SigningKey.generate().save(key_path, b"secret")
    assert _problems(path) == [
        f"recording.signing_key: {key_path}: protected by a passphrase, which the recorder "
        "cannot type (hint: give the recorder a key made without "
        "--passphrase-file/--ask-passphrase)"
    ]

    key_path.unlink()
    SigningKey.generate().save(key_path)
    key_path.chmod(0o644)
    assert _problems(path) == [
        f"recording.signing_key: {key_path}: readable by other users, who could sign as this "
        f"recorder (hint: chmod 600 {key_path})"
    ]


def test_an_empty_signing_key_is_a_problem_not_unsigned(tmp_path: Path) -> None:
    path = shipped_in(tmp_path, **{COMMENTED: 'signing_key = ""'})
    [problem] = check_config(path, env={})
    assert (problem.key, problem.message) == ("recording.signing_key", "must not be empty")
