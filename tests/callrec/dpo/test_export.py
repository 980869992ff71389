"""subject export beyond the happy path: a folder in use, a damaged recording, a deleted one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from callrec.catalog import Catalog
from callrec.crypto.keys import PrivateKey
from tests.callrec.cli_support import Run, run
from tests.callrec.dpo.recorders import Recorder, make_older

ALICE = "+4930123456"


def _export(capsys: pytest.CaptureFixture[str], recorder: Recorder, key: Path, out: Path) -> Run:
    return run(
        capsys, "subject", "export", "--number", ALICE, "--key", key, "--out", out,
        "--reason", "request 21", "--config", recorder.config_path,
    )  # fmt: skip


@pytest.fixture
def key_file(key: PrivateKey, tmp_path: Path) -> Path:
    path = tmp_path / "dpo.key"
    key.save(path)
    return path


def test_an_export_into_a_folder_in_use_does_nothing(
    recorders: tuple[Recorder, Recorder],
    capsys: pytest.CaptureFixture[str],
    key_file: Path,
    tmp_path: Path,
) -> None:
    a, _ = recorders
    a.call(ALICE)
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine")
    result = _export(capsys, a, key_file, used)
    assert result.code == 1
    assert f"{used} is not empty: give a new folder for the export" in result.err
    assert [p.name for p in used.iterdir()] == ["notes.txt"]
    assert not a.config.access_log.exists()


def test_a_damaged_recording_is_exported_up_to_the_damage_and_the_page_says_so(
    recorders: tuple[Recorder, Recorder],
    capsys: pytest.CaptureFixture[str],
    key_file: Path,
    tmp_path: Path,
) -> None:
    a, _ = recorders
    damaged_id, damaged = a.call(ALICE)
    data = bytearray(damaged.read_bytes())
    data[-40] ^= 0x01  # inside the last segment: the audio before it still verifies
    damaged.write_bytes(bytes(data))
    out = tmp_path / "out"
    result = _export(capsys, a, key_file, out)
    assert result.code == 4
    assert f"{damaged_id}: invalid: only the " in result.err
    [wav] = out.glob("*.wav")
    record = json.loads(wav.with_suffix(".json").read_text())
    assert record["verdict"] == "invalid"
    assert record["metadata"][0]["kind"] == "consent-evidence"
    page = (out / "index.html").read_text()
    assert "invalid: only the" in page and 'class="problem"' in page


def test_a_recording_deleted_before_the_export_is_named_not_played(
    recorders: tuple[Recorder, Recorder],
    capsys: pytest.CaptureFixture[str],
    key_file: Path,
    tmp_path: Path,
) -> None:
    a, _ = recorders
    gone_id, _ = a.call(ALICE, dialled="400")
    kept_id, _ = a.call(ALICE)
    with Catalog.from_config(a.config) as catalog:
        make_older(catalog, 400)
    expired = run(capsys, "retention", "run", "--config", a.config_path)
    assert expired.code == 0, expired.err
    assert f"{gone_id} deleted" in expired.out and f"{kept_id} deleted" in expired.out
    out = tmp_path / "out"
    result = _export(capsys, a, key_file, out)
    assert result.code == 0, result.err
    assert "exported 2 call(s) of caller p1:" in result.out and "0 recording(s)" in result.out
    page = (out / "index.html").read_text()
    assert f"Recording {gone_id}: deleted before this export" in page
    assert "<audio" not in page
    assert list(out.glob("*.wav")) == []
