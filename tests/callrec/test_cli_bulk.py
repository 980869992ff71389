"""``verify`` and ``decrypt`` on folders: a whole spool at once, JSON for scripts,
a progress counter on a terminal only, and decrypted copies in a mirrored tree
that never overwrite anything."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec.media.g711 import ulaw_decode, ulaw_encode
from tests.callrec.cli_support import (
    CALLREC,
    KeyPair,
    make_keys,
    run,
    sealed_recording,
    speech_like,
)

DAY = Path("2024/05/01")


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


@pytest.fixture
def spool(tmp_path: Path, keys: KeyPair) -> Path:
    """A spool as the recorder leaves it: two sealed calls, one cut short in incoming/,
    plus things that are no recordings."""
    root = tmp_path / "spool"
    sealed_recording(root / DAY, "a", keys, 1.0, seed=1)
    sealed_recording(root / DAY, "b", keys, 1.5, seed=2)
    whole = sealed_recording(tmp_path / "scratch", "c", keys, 2.0, seed=3)
    (root / "incoming").mkdir()
    (root / "incoming" / "c.crec.part").write_bytes(whole.read_bytes()[:-2000])
    (root / "incoming" / ".probe").write_bytes(b"x")
    (root / DAY / "notes.txt").write_text("not a recording")
    (root / "2024" / "06").mkdir()  # empty
    return root


def _names(rows: list[dict[str, object]]) -> list[str]:
    return [Path(str(r["path"])).name for r in rows]


# --- verify ---------------------------------------------------------------------------


def test_verify_of_a_folder_checks_every_recording_below_it(
    spool: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "verify", spool, "--key", keys.key)
    assert result.code == 3  # the worst: one recording was cut short
    lines = result.out.splitlines()
    rows = {Path(line.split()[0]).name: line.split()[1] for line in lines[1:4]}
    assert rows == {"a.crec": "complete", "b.crec": "complete", "c.crec.part": "truncated"}
    assert lines[-1] == "3 files: 2 complete, 1 truncated"


def test_verify_json_gives_one_object_per_file_and_a_summary(
    spool: Path, tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = spool / DAY / "\x1b[2Jx\u202e.crec"
    hostile.write_bytes(b"RIFF" + bytes(100))
    missing = tmp_path / "gone.crec"
    result = run(capsys, "verify", "--json", spool, missing, "--key", keys.key)
    assert result.code == 4
    assert result.out.isascii()  # the hostile name arrives only as \u escapes
    *files, summary = [json.loads(line) for line in result.out.splitlines()]
    assert [f["type"] for f in files] == ["file"] * 5
    assert _names(files) == [hostile.name, "a.crec", "b.crec", "c.crec.part", "gone.crec"]
    by_name = dict(zip(_names(files), files, strict=True))
    good = by_name["a.crec"]
    assert good["verdict"] == "complete" and good["exit_code"] == 0 and good["error"] is None
    assert good["audio_seconds"] == pytest.approx(1.0)
    assert isinstance(good["segments"], int) and good["segments"] >= 2
    assert (good["signature"], good["signer"], good["origin"]) == ("unsigned", None, "unsigned")
    assert good["origin_checked"] is False
    assert good["seconds_taken"] >= 0
    cut = by_name["c.crec.part"]
    assert (cut["verdict"], cut["exit_code"]) == ("truncated", 3)
    assert cut["error"]
    assert (by_name[hostile.name]["verdict"], by_name[hostile.name]["exit_code"]) == ("invalid", 4)
    gone = by_name["gone.crec"]
    assert (gone["verdict"], gone["exit_code"], gone["audio_seconds"]) == ("error", 1, None)
    assert gone["error"].endswith("gone.crec: no such file")
    assert summary == {
        "type": "summary",
        "files": 5,
        "verdicts": {"complete": 2, "error": 1, "invalid": 1, "truncated": 1},
        "exit_code": 4,
        "origin_checked": False,
    }


def test_a_folder_without_recordings_is_an_error_not_an_empty_success(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "call.wav").write_bytes(b"RIFF")
    result = run(capsys, "verify", "--json", empty, "--key", keys.key)
    assert result.code == 1
    first = json.loads(result.out.splitlines()[0])
    assert (first["path"], first["verdict"]) == (str(empty), "error")
    assert first["error"] == f"{empty}: a folder with no .crec or .crec.part files in it"


# --- decrypt --------------------------------------------------------------------------


def test_decrypt_of_a_folder_mirrors_its_tree_under_the_output_folder(
    spool: Path, tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plain"
    result = run(capsys, "decrypt", spool, "-o", out, "--key", keys.key)
    assert result.code == 3, result.err  # c was cut short; its verified part is written
    wavs = sorted(p.relative_to(out) for p in out.rglob("*.wav"))
    assert wavs == [DAY / "a.wav", DAY / "b.wav", Path("incoming/c.wav")]
    for rel, seed, seconds in ((DAY / "a.wav", 1, 1.0), (DAY / "b.wav", 2, 1.5)):
        audio, rate = sf.read(str(out / rel), dtype="int16")
        sent = ulaw_decode(ulaw_encode(speech_like(8000, seconds, seed=seed)))
        assert rate == 8000
        assert np.array_equal(audio, sent)
        meta = json.loads((out / rel).with_suffix(".json").read_text())
        assert meta["verdict"] == "complete"
    for folder in (out / "2024", out / "2024/05", out / DAY, out / "incoming"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE((out / DAY / "a.wav").stat().st_mode) == 0o600
    assert not list(spool.rglob("*.wav"))  # nothing in clear beside the encrypted files
    assert "truncated" in result.err and "c.crec.part" in result.err


def test_decrypt_of_a_folder_again_overwrites_nothing(
    spool: Path, tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "plain"
    assert run(capsys, "decrypt", spool, "-o", out, "--key", keys.key).code == 3
    (out / DAY / "a.wav").write_bytes(b"edited by the DPO")
    result = run(capsys, "decrypt", spool, "-o", out, "--key", keys.key)
    assert result.code == 1
    assert (out / DAY / "a.wav").read_bytes() == b"edited by the DPO"
    refused = [line for line in result.err.splitlines() if "refusing to overwrite" in line]
    assert len(refused) == 3
    assert result.out == ""


def test_two_recordings_that_would_write_one_file_leave_the_second_undone(
    tmp_path: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "copy"
    first = sealed_recording(folder, "x", keys, 1.0, seed=4)
    second = folder / "x.crec.part"
    second.write_bytes(first.read_bytes()[:-500])
    out = tmp_path / "plain"
    result = run(capsys, "decrypt", folder, "-o", out, "--key", keys.key)
    assert result.code == 1
    [line] = result.out.splitlines()
    assert line.startswith(f"{first} -> {out / 'x.wav'} (1.00 s, complete")
    assert f"{second}: its output {out / 'x.wav'} is {first}'s: nothing written" in result.err
    audio, _ = sf.read(str(out / "x.wav"), dtype="int16")
    assert len(audio) == 8000
    # Named one by one, beside themselves, even --force does not let the second win.
    result = run(capsys, "decrypt", first, second, "--force", "--key", keys.key)
    assert result.code == 1
    assert f"its output {folder / 'x.wav'} is {first}'s: nothing written" in result.err
    audio, _ = sf.read(str(folder / "x.wav"), dtype="int16")
    assert len(audio) == 8000


def test_decrypt_of_a_folder_needs_an_output_folder(
    spool: Path, keys: KeyPair, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, "decrypt", spool, "--key", keys.key)
    assert result.code == 2
    assert result.err.startswith("callrec decrypt: a folder needs -o DIR: ")
    assert not list(spool.rglob("*.wav")) and not list(spool.rglob("*.json"))


# --- progress on a terminal -----------------------------------------------------------


def _with_terminal_stderr(argv: list[str]) -> tuple[int, bytes, bytes]:
    """Run ``callrec ARGV`` with stderr on a pseudo-terminal: (exit code, stdout, stderr)."""
    controller, terminal = os.openpty()
    try:
        proc = subprocess.run(
            [str(CALLREC), *argv], stdout=subprocess.PIPE, stderr=terminal, check=False, timeout=60
        )
        os.close(terminal)
        seen = b""
        while select.select([controller], [], [], 5)[0]:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # EIO: the terminal side is closed and drained
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(controller)
    return proc.returncode, proc.stdout, seen


def test_decrypt_counts_files_on_a_terminal_and_keeps_stdout_clean(
    spool: Path, tmp_path: Path, keys: KeyPair
) -> None:
    out = tmp_path / "plain"
    code, stdout, seen = _with_terminal_stderr(
        ["decrypt", str(spool), "-o", str(out), "--key", str(keys.key)]
    )
    assert code == 3
    for i in (1, 2, 3):
        assert f"\rdecrypting {i}/3".encode() in seen
    assert b"decrypting" not in stdout
    assert len(stdout.decode().splitlines()) == 3


def test_nothing_extra_reaches_a_piped_stderr(spool: Path, tmp_path: Path, keys: KeyPair) -> None:
    proc = subprocess.run(
        [str(CALLREC), "verify", "--json", str(spool), "--key", str(keys.key)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 3
    assert proc.stderr == ""
    assert [json.loads(line)["type"] for line in proc.stdout.splitlines()] == [
        "file",
        "file",
        "file",
        "summary",
    ]


def test_verify_json_lines_stay_whole_while_the_counter_runs(spool: Path, keys: KeyPair) -> None:
    code, stdout, seen = _with_terminal_stderr(
        ["verify", "--json", str(spool), "--key", str(keys.key)]
    )
    assert code == 3
    assert b"\rverifying 3/3" in seen
    assert json.loads(stdout.splitlines()[-1])["files"] == 3
