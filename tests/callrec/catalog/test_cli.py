"""``callrec recordings list|show|hold|release`` and ``callrec catalog rebuild`` as a DPO
runs them, on a catalogue filled from real audit lines."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from callrec.catalog import Catalog
from callrec.cli.recordings_cmds import _DECISIONS
from callrec.consent import Decision
from tests.callrec.catalog.support import Recorder
from tests.callrec.cli_support import Run, run


def _config(recorder: Recorder, url: str) -> Path:
    path = recorder.root / "callrec.toml"
    pub = recorder.root / "dpo.pub"
    pub.write_text(recorder.pub.to_text())
    path.write_text(
        f'[recording]\nspool = "{recorder.spool.root}"\nrecipients = ["{pub}"]\n\n'
        f'[privacy]\npseudonym_key = "{recorder.pseudonym_path}"\n'
        f'audit_log = "{recorder.audit_path}"\n\n'
        f'[catalog]\nurl = "{url}"\nrecorder_id = "{recorder.recorder_id}"\n'
    )
    return path


@pytest.fixture
def config(recorder: Recorder, catalog_url: str) -> Path:
    """A config for ``recorder``, whose calls so far are in the catalogue."""
    return _config(recorder, catalog_url)


def _fill(recorder: Recorder, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rebuilt = run(capsys, "catalog", "rebuild", "--config", config)
    assert rebuilt.code == 0, rebuilt.err


def _rows(listed: Run) -> list[list[str]]:
    return [line.split() for line in listed.out.splitlines() if re.match(r"\d{4}-", line)]


def test_list_finds_calls_by_number_decision_and_dates(
    recorder: Recorder, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = recorder.call("+4930111")
    b = recorder.call("0049 30 222", decision=Decision.DECLINED_DTMF, recorded=False,
                      after=86_400)  # fmt: skip
    _fill(recorder, config, capsys)

    def calls(*args: str) -> list[str]:
        listed = run(capsys, "recordings", "list", "--config", config, *args)
        assert listed.code == 0, listed.err
        return [row[3] for row in _rows(listed)]

    assert calls() == [a["channel"], b["channel"]]
    assert calls("--number", "+49 (30) 222") == [b["channel"]]  # the same number, written so
    assert calls("--number", "+4930333") == []
    assert calls("--decision", "declined-dtmf") == [b["channel"]]
    assert calls("--until", "2026-12-01") == [a["channel"]]  # that day included
    assert calls("--since", "2026-12-02") == [b["channel"]]
    assert calls("--since", "2026-12-02T00:01:30+00:00") == []
    table = run(capsys, "recordings", "list", "--config", config)
    assert table.out.splitlines()[0].split()[:4] == ["STARTED", "(UTC)", "RECORDER", "CALL"]
    assert _rows(table)[0][-2:] == [a["recording_id"], "present"]
    assert _rows(table)[1][-2:] == ["not", "recorded"]
    assert table.out.splitlines()[-1] == "2 call(s), 1 recording(s)"
    assert "+4930111" not in table.out and "p1:" not in table.out


def test_list_json_has_one_object_per_call_with_its_recordings(
    recorder: Recorder, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = recorder.call(dialled="100")
    _fill(recorder, config, capsys)
    listed = run(capsys, "recordings", "list", "--json", "--config", config)
    (entry,) = [json.loads(text) for text in listed.out.splitlines()]
    assert entry["call"]["call_id"] == line["channel"]
    assert entry["call"]["dialled"] == "100"
    assert entry["call"]["caller_pseudonym"] == line["evidence"]["caller"]
    assert entry["recordings"][0]["recording_id"] == line["recording_id"]
    assert entry["recordings"][0]["hold"] is None


def test_a_date_that_is_not_one_is_a_usage_error_naming_the_format(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        run(capsys, "recordings", "list", "--since", "yesterday", "--config", config)
    assert stop.value.code == 2
    assert "'yesterday' is not a date: use YYYY-MM-DD" in capsys.readouterr().err


def test_show_tells_the_file_s_state_and_verify_remembers_the_verdict(
    recorder: Recorder, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = recorder.call()
    _fill(recorder, config, capsys)
    shown = run(capsys, "recordings", "show", line["channel"], "--config", config)
    assert shown.code == 0, shown.err
    for expected in (
        "decision: implied",
        "dialled: 100",
        "  state: present",
        "  present: yes",
        "  signed: unsigned",
        "  verified: not verified (give --key to verify it)",
    ):
        assert expected in shown.out.splitlines(), shown.out  # fmt: skip
    assert '"prompt": {' in shown.out  # the evidence summary
    verified = run(capsys, "recordings", "show", line["recording_id"], "--config", config,
                   "--key", recorder.key_path)  # fmt: skip
    assert verified.code == 0, verified.err
    assert "  verified: complete" in verified.out.splitlines()
    again = run(capsys, "recordings", "show", line["channel"], "--config", config)
    assert "  verified: complete" in again.out.splitlines()


def test_show_says_when_a_file_is_gone_or_not_the_one_catalogued(
    recorder: Recorder, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    changed, gone = recorder.call(), recorder.call()
    _fill(recorder, config, capsys)
    with Path(changed["path"]).open("ab") as f:
        f.write(b"appended")
    Path(gone["path"]).unlink()
    first = run(capsys, "recordings", "show", changed["recording_id"], "--config", config)
    assert "  CHANGED since catalogued: its size is" in first.out
    second = run(capsys, "recordings", "show", gone["recording_id"], "--config", config)
    assert "  present: no, the file is not there" in second.out.splitlines()


def test_show_of_an_unknown_id_fails_naming_it(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = run(capsys, "recordings", "show", "deadbeef00", "--config", config)
    assert shown.code == 1
    assert "no call or recording deadbeef00 in the catalogue" in shown.err


def test_show_lists_the_erasure_orders_not_yet_carried_out(
    recorder: Recorder, config: Path, catalog_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = recorder.call("+4930111")
    _fill(recorder, config, capsys)
    with Catalog.open(catalog_url) as catalog:
        order = catalog.add_erasure_order(line["evidence"]["caller"], "Art. 17 letter", "dpo")
    shown = run(capsys, "recordings", "show", line["channel"], "--config", config)
    assert (
        f"erasure order {order.order_id} of " in shown.out
        and "by dpo (Art. 17 letter): not yet carried out by pbx1" in shown.out
    )
    as_json = run(capsys, "recordings", "show", line["channel"], "--json", "--config", config)
    (pending,) = json.loads(as_json.out)["pending_erasure_orders"]
    assert (pending["order_id"], pending["pending"]) == (order.order_id, ["pbx1"])


def test_hold_and_release_from_the_command_line(
    recorder: Recorder, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = recorder.call()
    _fill(recorder, config, capsys)
    held = run(capsys, "recordings", "hold", line["channel"], "--reason", "court case",
               "--config", config)  # fmt: skip
    assert (held.code, held.out) == (0, f"held: {line['recording_id']}\n"), held.err
    _fill(recorder, config, capsys)  # a rebuild keeps the hold
    shown = run(capsys, "recordings", "show", line["channel"], "--config", config)
    assert re.search(r"  on hold since .* UTC by \S+@\S+: court case", shown.out), shown.out
    released = run(capsys, "recordings", "release", line["recording_id"], "--config", config)
    assert released.out == f"released: {line['recording_id']}\n"
    shown = run(capsys, "recordings", "show", line["channel"], "--config", config)
    assert "  state: present" in shown.out.splitlines()


def test_rebuild_enters_a_file_no_audit_line_names_and_reports_a_missing_one(
    recorder: Recorder, config: Path, catalog_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    line = recorder.call()
    lone = recorder.seal()  # e.g. recorded while the audit log was on another disk
    _fill(recorder, config, capsys)
    Path(line["path"]).unlink()
    rebuilt = run(capsys, "catalog", "rebuild", "--config", config)
    assert f"  missing: {line['recording_id']} (its file is not where" in rebuilt.out
    with Catalog.open(catalog_url) as catalog:
        entry = catalog.get(lone.recording_id)
    assert entry is not None and entry.call is None
    assert entry.recordings[0].uri == lone.path.as_uri()


def test_the_decision_choices_are_the_consent_decisions() -> None:
    assert sorted(_DECISIONS) == sorted(str(d) for d in Decision)
