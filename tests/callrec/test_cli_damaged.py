"""Decrypting damaged recordings: what is recovered, what is refused, which exit code."""

from __future__ import annotations

import json
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec.audio import Int16Array
from callrec.media.g711 import ulaw_decode, ulaw_encode
from tests.callrec.cli_support import CALLREC, KeyPair, damaged_copies, make_keys, run, speech_like


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


def _sealed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, name: str = "call"
) -> tuple[Path, Int16Array]:
    """A 5 s µ-law recording (about ten segments) sealed into tmp_path/sealed."""
    src = tmp_path / f"{name}.ulaw"
    src.write_bytes(ulaw_encode(speech_like(8000, 5.0)))
    assert run(capsys, "seal", src, "--to", keys.pub, "--out", tmp_path / "sealed").code == 0
    return tmp_path / "sealed" / f"{name}.crec", ulaw_decode(src.read_bytes())


def test_truncated_part_file_gives_its_recovered_audio_and_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    crec, decoded = _sealed(tmp_path, capsys, keys)
    data = crec.read_bytes()
    part = tmp_path / "crashed.crec.part"
    part.write_bytes(data[: len(data) - 5000])

    result = run(capsys, "decrypt", part, "--key", keys.key)
    assert result.code == 3
    assert "truncated" in result.err
    back = sf.read(tmp_path / "crashed.wav", dtype="int16")[0]
    assert 8000 * 3 < len(back) < len(decoded)
    assert np.array_equal(back, decoded[: len(back)])
    meta = json.loads((tmp_path / "crashed.json").read_text())
    assert meta["verdict"] == "truncated"
    assert meta["error"]
    assert meta["metadata"][0]["type"] == "sealed-from-file"


def test_tampered_file_exits_4_and_keeps_only_audio_before_the_damage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    crec, decoded = _sealed(tmp_path, capsys, keys)
    data = bytearray(crec.read_bytes())
    data[len(data) // 2] ^= 0x01
    crec.write_bytes(bytes(data))

    result = run(capsys, "decrypt", crec, "--key", keys.key)
    assert result.code == 4
    assert "invalid" in result.err
    assert "segment" in result.err
    back = sf.read(crec.with_suffix(".wav"), dtype="int16")[0]
    assert len(back) < len(decoded) // 2
    assert np.array_equal(back, decoded[: len(back)])
    meta = json.loads(crec.with_suffix(".json").read_text())
    assert meta["verdict"] == "invalid"
    assert "segment" in meta["error"]


def test_several_files_go_into_the_output_folder_and_the_worst_exit_code_wins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    good, _ = _sealed(tmp_path, capsys, keys, "good")
    other, _ = _sealed(tmp_path, capsys, keys, "other")
    cut, bad = damaged_copies(other, tmp_path, cut=3000, flip=-10)

    out = tmp_path / "out"
    result = run(capsys, "decrypt", good, cut, "--key", keys.key, "-o", out)
    assert result.code == 3
    assert sorted(p.name for p in out.iterdir()) == [
        "cut.json",
        "cut.wav",
        "good.json",
        "good.wav",
    ]

    result = run(capsys, "decrypt", cut, bad, good, "--key", keys.key, "-o", out, "--force")
    assert result.code == 4
    assert (out / "bad.json").exists()


def test_a_key_that_is_not_a_recipient_exits_4_and_writes_no_audio(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    crec, _ = _sealed(tmp_path, capsys, keys)
    stranger = make_keys(capsys, tmp_path / "keys", "stranger")
    result = run(capsys, "decrypt", crec, "--key", stranger.key)
    assert result.code == 4
    assert "none of the given keys" in result.err
    assert not crec.with_suffix(".wav").exists()


def test_wrong_passphrase_is_a_clear_error_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "right").write_text("right one\n")
    (tmp_path / "wrong").write_text("wrong one\n")
    kdir = tmp_path / "keys"
    assert run(capsys, "keygen", "--out", kdir, "--passphrase-file", tmp_path / "right").code == 0
    keys = KeyPair(kdir / "callrec.pub", kdir / "callrec.key")
    crec, _ = _sealed(tmp_path, capsys, keys)

    result = run(
        capsys, "decrypt", crec, "--key", keys.key, "--passphrase-file", tmp_path / "wrong"
    )
    assert result.code == 1
    assert f"{keys.key}: wrong passphrase" in result.err
    assert not crec.with_suffix(".wav").exists()

    result = run(capsys, "verify", crec, "--key", keys.key)
    assert result.code == 1
    assert "passphrase-protected: give --passphrase-file or set CALLREC_KEY_PASSPHRASE" in (
        result.err
    )

    result = run(
        capsys, "decrypt", crec, "--key", keys.key, "--passphrase-file", tmp_path / "right"
    )
    assert result.code == 0


def test_a_missing_input_is_reported_and_the_others_still_decrypt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    crec, _ = _sealed(tmp_path, capsys, keys)
    copy = tmp_path / "copy.crec"
    shutil.copy(crec, copy)
    result = run(capsys, "decrypt", tmp_path / "nope.crec", copy, "--key", keys.key)
    assert result.code == 1
    assert "nope.crec" in result.err
    assert (tmp_path / "copy.wav").exists()


def _small_file_limit() -> None:
    # Runs in the child: writes past 64 KiB fail with EFBIG, as on a full disk.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65536, 65536))


def test_a_full_disk_while_decrypting_is_one_clear_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    crec, _ = _sealed(tmp_path, capsys, keys)
    proc = subprocess.run(
        [str(CALLREC), "decrypt", str(crec), "--key", str(keys.key)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        preexec_fn=_small_file_limit,
    )
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [
        f"callrec decrypt: {crec}: {crec.with_suffix('.wav')}: "
        "cannot write audio (disk full?): System error."
    ]
    # Nothing half-written is left: neither the WAV nor its hidden temporary file.
    assert sorted(p.name for p in crec.parent.iterdir()) == [crec.name]
