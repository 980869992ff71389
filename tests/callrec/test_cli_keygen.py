"""``callrec keygen``: the files an admin gets, their modes, passphrase sources."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from callrec.crypto.keys import PrivateKey, PublicKey
from callrec.errors import WrongPassphraseError
from tests.callrec.cli_support import CALLREC, run


def test_keygen_writes_public_and_private_key_and_prints_the_fingerprint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "keygen", "--out", tmp_path / "keys")
    assert result.code == 0
    pub = PublicKey.load(tmp_path / "keys" / "callrec.pub")
    key_path = tmp_path / "keys" / "callrec.key"
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert f"fingerprint: {pub.fingerprint}" in result.out
    assert "NOT passphrase-protected" in result.out
    assert not PrivateKey.needs_passphrase(key_path)
    assert PrivateKey.load(key_path).public_key() == pub


def test_keygen_refuses_to_overwrite_an_existing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(capsys, "keygen", "--out", tmp_path, "--name", "dpo").code == 0
    before = (tmp_path / "dpo.key").read_bytes()
    result = run(capsys, "keygen", "--out", tmp_path, "--name", "dpo")
    assert result.code == 1
    assert f"refusing to overwrite {tmp_path / 'dpo.pub'}" in result.err
    assert (tmp_path / "dpo.key").read_bytes() == before


@pytest.mark.parametrize("name", ["../evil", "a\nb", ".hidden", "", "x/y"])
def test_keygen_refuses_a_name_that_is_not_a_plain_file_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    result = run(capsys, "keygen", "--out", tmp_path, "--name", name)
    assert result.code == 1
    assert "--name must be letters, digits" in result.err
    assert "\n" not in result.err.strip()
    assert list(tmp_path.iterdir()) == []


def test_keygen_into_a_folder_that_cannot_exist_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run(capsys, "keygen", "--out", blocker / "sub")
    assert result.code == 1
    assert result.err.startswith("callrec keygen: cannot create folder")
    assert "Traceback" not in result.err


def test_keygen_protects_the_key_with_a_passphrase_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text("correct horse\n")
    result = run(capsys, "keygen", "--out", tmp_path, "--passphrase-file", secret)
    assert result.code == 0
    key_path = tmp_path / "callrec.key"
    assert PrivateKey.needs_passphrase(key_path)
    # The trailing newline an editor adds is not part of the passphrase.
    PrivateKey.load(key_path, b"correct horse")
    with pytest.raises(WrongPassphraseError):
        PrivateKey.load(key_path, b"correct horse\n")


def test_keygen_takes_the_passphrase_from_the_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CALLREC_KEY_PASSPHRASE", "from env")
    assert run(capsys, "keygen", "--out", tmp_path).code == 0
    PrivateKey.load(tmp_path / "callrec.key", b"from env")


def test_keygen_asks_twice_and_refuses_a_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter(["one", "two"])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(answers))
    result = run(capsys, "keygen", "--out", tmp_path, "--ask-passphrase")
    assert result.code == 1
    assert "the passphrases do not match" in result.err
    assert list(tmp_path.iterdir()) == []

    answers = iter(["same", "same"])
    assert run(capsys, "keygen", "--out", tmp_path, "--ask-passphrase").code == 0
    PrivateKey.load(tmp_path / "callrec.key", b"same")


def test_keygen_pq_makes_a_hybrid_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "keygen", "--out", tmp_path, "--pq").code == 0
    assert PublicKey.load(tmp_path / "callrec.pub").kem == "mlkem768-x25519"


def test_installed_command_creates_keys(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(CALLREC), "keygen", "--out", str(tmp_path), "--name", "archive"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    fingerprint = PublicKey.load(tmp_path / "archive.pub").fingerprint
    assert fingerprint in proc.stdout
