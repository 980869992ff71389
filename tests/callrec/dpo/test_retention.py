"""``retention run`` and holds from the command line, and one caller on two recorders.

What the review found: a future ``--as-of`` really deleted (and the access
line did not say as of when); a huge ``retention.days`` crashed every run; a
hold could not stop a deletion already claimed, and a run cut short left the
claim; two recorders' calls with one call id were merged into one.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from callrec.catalog import Catalog, RecordingState
from callrec.config_model import RetentionConfig
from callrec.crypto.keys import PrivateKey
from callrec.dpo.retention import expired
from tests.callrec.cli_support import Run, run
from tests.callrec.dpo.recorders import Recorder, make_older

ALICE = "+4930123456"


def _retention(capsys: pytest.CaptureFixture[str], recorder: Recorder, *argv: str) -> Run:
    return run(capsys, "retention", "run", *argv, "--config", recorder.config_path)


def _access(recorder: Recorder) -> list[dict[str, Any]]:
    path = recorder.config.access_log
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _state(recorder: Recorder, recording_id: str) -> RecordingState:
    with Catalog.from_config(recorder.config) as catalog:
        rec = catalog.recording(recording_id)
    assert rec is not None
    return rec.state


def test_a_future_as_of_only_previews_and_a_real_run_says_as_of_when_it_judged(
    recorders: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = recorders
    rid, path = a.call(ALICE)
    later = (datetime.now(UTC) + timedelta(days=91)).date().isoformat()

    refused = _retention(capsys, a, "--as-of", later)
    assert refused.code == 2
    assert f"--as-of {later} 00:00 UTC is in the future" in refused.err
    assert "--dry-run" in refused.err
    assert path.exists() and _access(a) == []

    preview = _retention(capsys, a, "--as-of", later, "--dry-run")
    assert preview.code == 0, preview.err
    assert f"{rid} would delete (retention.days = 90;" in preview.out
    assert path.exists() and _access(a) == []

    with Catalog.from_config(a.config) as catalog:
        make_older(catalog, 100)  # the call was made 100 days ago
    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    done = _retention(capsys, a, "--as-of", yesterday)
    assert done.code == 0, done.err
    assert f"{rid} deleted (retention.days = 90;" in done.out
    assert not path.exists()
    [line] = _access(a)
    assert (line["action"], line["recordings"], line["reason"]) == (
        "retention-delete", [rid], "retention.days = 90",
    )  # fmt: skip
    assert line["as_of"] == f"{yesterday}T00:00:00+00:00"


def test_a_retention_of_more_than_a_century_is_refused_naming_its_key(
    recorders: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = recorders
    _, path = a.call(ALICE)
    with a.config_path.open("a") as f:
        f.write('[retention]\ndays = 36500000\n[retention.numbers."100"]\ndays = 36501\n')
    result = _retention(capsys, a)
    assert result.code == 1
    assert f"{a.config_path}:retention.days: must be at most 36500 days" in result.err
    assert f'{a.config_path}:retention.numbers."100".days: must be at most 36500' in result.err
    assert "Traceback" not in result.err and path.exists()


def test_a_rule_past_the_calendar_never_expires_instead_of_crashing(
    recorders: tuple[Recorder, Recorder],
) -> None:
    a, _ = recorders
    a.call(ALICE)
    with Catalog.from_config(a.config) as catalog:
        entries = catalog.list()
    far = datetime(9999, 12, 31, tzinfo=UTC)
    assert expired(entries, RetentionConfig(days=10**8), far, "rec-a") == []
    assert len(expired(entries, RetentionConfig(days=1), far, "rec-a")) == 1


def test_a_claimed_recording_cannot_be_held_and_the_next_run_finishes_its_deletion(
    recorders: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = recorders
    rid, path = a.call(ALICE)
    kept_id, kept = a.call(ALICE)
    with Catalog.from_config(a.config) as catalog:  # a run claimed it, then the host died
        catalog.claim_deletion(rid, "retention@pbx1", "retention.days = 90")

    held = run(capsys, "recordings", "hold", rid, "--reason", "court 8", "--config", a.config_path)
    assert held.code == 1
    said = f"recording {rid} is being deleted (under retention.days = 90, by retention@pbx1"
    assert said in held.err and "too late for a hold" in held.err
    assert path.exists() and _access(a) == []  # refused before any access line
    shown = run(capsys, "recordings", "show", rid, "--config", a.config_path)
    assert "state: deleting" in shown.out and "being deleted since" in shown.out

    finished = _retention(capsys, a)
    assert finished.code == 0, finished.err
    assert f"{rid} interrupted deletion (retention.days = 90) finished" in finished.out
    assert "1 interrupted deletion(s) finished" in finished.out
    assert not path.exists() and kept.exists()
    assert _state(a, rid) is RecordingState.DELETED
    assert _state(a, kept_id) is RecordingState.PRESENT
    [line] = _access(a)
    assert (line["action"], line["recordings"]) == ("retention-delete", [rid])
    assert line["claimed"]["by"] == "retention@pbx1"


def test_one_caller_on_two_recorders_with_one_call_id_is_exported_and_erased_whole(
    recorders: tuple[Recorder, Recorder],
    capsys: pytest.CaptureFixture[str],
    key: PrivateKey,
    tmp_path: Path,
) -> None:
    a, b = recorders
    on_a, file_a = a.call(ALICE, uniqueid="1733000000.42")
    on_b, file_b = b.call(ALICE, uniqueid="1733000000.42")  # another PBX, the same unique id
    key.save(tmp_path / "dpo.key")

    exported = run(
        capsys, "subject", "export", "--number", ALICE, "--key", tmp_path / "dpo.key",
        "--out", tmp_path / "out", "--reason", "request 40", "--config", a.config_path,
    )  # fmt: skip
    assert exported.code == 0, exported.err
    assert "exported 2 call(s)" in exported.out and "2 recording(s)" in exported.out
    assert len(list((tmp_path / "out").glob("call-*.wav"))) == 2

    erased = run(
        capsys, "subject", "erase", "--number", ALICE, "--reason", "request 41",
        "--config", a.config_path,
    )  # fmt: skip
    assert erased.code == 0, erased.err
    assert f"deleted 1 recording(s) on recorder rec-a: {on_a}" in erased.out
    assert not file_a.exists() and file_b.exists()
    carried = run(capsys, "subject", "erase", "--carry-out", "--config", b.config_path)
    assert carried.code == 0, carried.err
    assert f"deleted 1 recording(s) on recorder rec-b: {on_b}" in carried.out
    assert not file_b.exists()
