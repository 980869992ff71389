"""``callrec verify`` and ``callrec inspect``: what an admin reads on the terminal."""

from __future__ import annotations

import json
import os
import select
import subprocess
from pathlib import Path

import pytest

from callrec.crypto.keys import PublicKey
from callrec.media.g711 import ulaw_encode
from callrec.recording import Codec, RecordingWriter
from tests.callrec.cli_support import CALLREC, KeyPair, damaged_copies, make_keys, run, speech_like

HOSTILE = "\x1b[2J\x1b]0;pwned\x07\"Bob\" 'x'\r\nverdict: complete ../../etc/passwd \u202eevil\\n"


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


def _recording(tmp_path: Path, keys: KeyPair, name: str, seconds: float = 2.0) -> Path:
    writer = RecordingWriter.create(
        tmp_path, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=8000
    )
    writer.write_metadata({"type": "consent", "caller_name": HOSTILE, "digits": ["2"]})
    writer.write_audio(ulaw_encode(speech_like(8000, seconds)))
    writer.write_metadata({"type": "summary", "seconds": seconds})
    return writer.close(final_path=tmp_path / f"{name}.crec").path


def _damaged(tmp_path: Path, keys: KeyPair) -> tuple[Path, Path, Path]:
    good = _recording(tmp_path, keys, "good")
    return (good, *damaged_copies(good, tmp_path, cut=2000, flip=-100))


def test_verify_prints_a_table_and_exits_with_the_worst_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    good, cut, bad = _damaged(tmp_path, keys)
    result = run(capsys, "verify", good, cut, bad, tmp_path / "missing.crec", "--key", keys.key)
    assert result.code == 4
    lines = result.out.splitlines()
    assert lines[0].split() == ["FILE", "VERDICT", "SECONDS", "SEGMENTS", "ORIGIN", "ERROR"]
    rows = {line.split()[0]: line.split() for line in lines[1:5]}
    assert rows[str(good)][1:5] == ["complete", "2.0", rows[str(good)][3], "unsigned"]
    assert int(rows[str(good)][3]) >= 4
    assert rows[str(cut)][1] == "truncated"
    assert rows[str(bad)][1] == "invalid"
    assert "segment" in " ".join(rows[str(bad)][5:])
    assert rows[str(tmp_path / "missing.crec")][1:5] == ["error", "-", "-", "-"]
    assert lines[5].startswith("origin not checked: a file made by anyone holding a recipient")
    assert lines[6] == "4 files: 1 complete, 1 error, 1 invalid, 1 truncated"
    # stderr is not a terminal here: no progress counter.
    assert "verifying" not in result.err

    assert run(capsys, "verify", good, cut, "--key", keys.key).code == 3
    assert run(capsys, "verify", good, "--key", keys.key).code == 0


def test_verify_exit_code_reaches_the_shell(tmp_path: Path, keys: KeyPair) -> None:
    _, _, bad = _damaged(tmp_path, keys)
    proc = subprocess.run(
        [str(CALLREC), "verify", str(bad), "--key", str(keys.key)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 4
    assert "invalid" in proc.stdout


def test_inspect_without_a_key_shows_only_the_public_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    good = _recording(tmp_path, keys, "good")
    result = run(capsys, "inspect", good)
    assert result.code == 0
    fingerprint = PublicKey.load(keys.pub).fingerprint
    assert 'codec: "ulaw"' in result.out
    assert "sample_rate: 8000" in result.out
    assert f'key_id: "{fingerprint}"' in result.out
    assert "caller_name" not in result.out
    assert "consent" not in result.out

    info = json.loads(run(capsys, "inspect", good, "--json").out)
    assert info["recipients"] == [{"key_id": fingerprint, "kem": "x25519"}]
    assert info["sample_rate"] == 8000
    assert "metadata" not in info


def test_inspect_with_the_key_escapes_hostile_strings_in_text_mode(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    good = _recording(tmp_path, keys, "good")
    result = run(capsys, "inspect", good, "--key", keys.key)
    assert result.code == 0
    for raw in ("\x1b", "\x07", "\r", "\u202e"):
        assert raw not in result.out
    # The forged "verdict: complete" line stays inside the caller_name line.
    caller = [line for line in result.out.splitlines() if "caller_name" in line]
    assert len(caller) == 1
    assert caller[0].strip() == (
        'caller_name: "\\x1b[2J\\x1b]0;pwned\\x07\\"Bob\\" \'x\'\\r\\nverdict: complete '
        '../../etc/passwd \\u202eevil\\\\n"'
    )
    verdicts = [line for line in result.out.splitlines() if line.startswith("verdict")]
    assert verdicts == ['verdict: "complete"']


def test_inspect_json_round_trips_hostile_strings_as_ascii(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    good = _recording(tmp_path, keys, "good")
    result = run(capsys, "inspect", good, "--key", keys.key, "--json")
    assert result.code == 0
    assert result.out.isascii()
    info = json.loads(result.out)
    assert info["verdict"] == "complete"
    assert info["metadata"][0]["caller_name"] == HOSTILE
    assert info["metadata"][1] == {"type": "summary", "seconds": 2.0}


def test_inspect_of_a_truncated_file_with_the_key_exits_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    _, cut, _ = _damaged(tmp_path, keys)
    result = run(capsys, "inspect", cut, "--key", keys.key, "--json")
    assert result.code == 3
    info = json.loads(result.out)
    assert info["verdict"] == "truncated"
    assert info["metadata"][0]["caller_name"] == HOSTILE


def test_inspect_of_a_file_that_is_not_a_recording_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "x.crec"
    path.write_bytes(b"RIFF" + bytes(100))
    result = run(capsys, "inspect", path)
    assert result.code == 4
    assert "not a callrec recording" in result.err


def test_verify_shows_a_progress_counter_only_on_a_terminal(tmp_path: Path, keys: KeyPair) -> None:
    good, cut, _ = _damaged(tmp_path, keys)
    controller, terminal = os.openpty()
    try:
        proc = subprocess.run(
            [str(CALLREC), "verify", str(good), str(cut), "--key", str(keys.key)],
            stdout=subprocess.PIPE,
            stderr=terminal,
            check=False,
            timeout=60,
        )
        os.close(terminal)
        seen = _drain(controller)
    finally:
        os.close(controller)
    assert proc.returncode == 3
    assert b"\rverifying 1/2" in seen
    assert b"\rverifying 2/2" in seen
    # The table itself goes to stdout, untouched by the counter.
    assert b"verifying" not in proc.stdout
    assert proc.stdout.decode().splitlines()[-1] == "2 files: 1 complete, 1 truncated"


def _drain(fd: int) -> bytes:
    data = b""
    while select.select([fd], [], [], 5)[0]:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the other side is closed
            break
        if not chunk:
            break
        data += chunk
    return data
