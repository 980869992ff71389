"""A DPO's walk-through on the real Asterisk 22, with ``callrec serve`` running throughout.

Real SIP callers (sipp, two numbers) are recorded by a running recorder,
which enters each call and recording into its SQLite catalogue as they end.
Then the DPO's tools run beside it, as they would on a live PBX: list by
number (as typed from a letter) and by date, show one recording, export one
caller's calls and open the page in a real headless Chromium, hold one
recording, expire another by ``retention run``, and erase the caller.
After each step the files, the catalogue, the access log and ``audit verify``
say what a DPO expects; a call placed after the erasure shows that the
recorder's audit log, rewritten under its feet, still takes its lines and
still verifies.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import soundfile as sf

from callrec.audit import open_personal
from callrec.catalog import Catalog
from callrec.catalog.files import uri_path
from callrec.crypto.signing import SigningKey
from callrec.testcall.harness import CallReport, Identity, run_scenario
from tests.callrec.cli_support import Run, run
from tests.callrec.dpo.browser import open_page
from tests.callrec.dpo.recorders import make_older

from .conftest import STASIS_EXTEN, MakeRecorder, Recorder, assert_ok, line_of, wait_until

pytestmark = pytest.mark.realpbx

OTHER_EXTEN = "400"  # Stasis(callrec,400), the default destination: 30 days' retention
A = Identity("+4930123456", display="Alice Example")
A_TYPED = "+49 (30) 123-456"  # as the DPO types it from the caller's letter
B = Identity("+442079460000", display="Bob Example")
RECORDER_ID = "pbx-a"
EXPORT_REASON = "access request 2026-31"
ERASE_REASON = "erasure request 2026-32"


class Desk(NamedTuple):
    """What each of the DPO's steps works with."""

    capsys: pytest.CaptureFixture[str]
    recorder: Recorder
    signer: Path  # the recorder's public signing key
    lines: dict[str, dict[str, Any]]  # the audit line of each call, by name
    files: dict[str, Path]  # each recorded call's sealed file, by name


async def _office(make_recorder: MakeRecorder, tmp_path: Path) -> tuple[Recorder, Path]:
    """A recorder that signs, has a recorder id and keeps calls to 100 a year."""
    recorder = await make_recorder(start=False)
    key = SigningKey.generate()
    key.save(recorder.out / "rec.sign.key")
    signer = recorder.out / "rec.sign.pub"
    signer.write_text(key.public_key().to_text())
    text = recorder.config_path.read_text(encoding="utf-8")
    text = text.replace(
        "[recording]\n", f'[recording]\nsigning_key = "{recorder.out / "rec.sign.key"}"\n'
    )
    text = text.replace("[catalog]\n", f'[catalog]\nrecorder_id = "{RECORDER_ID}"\n')
    text += f'\n[retention]\ndays = 30\n\n[retention.numbers."{STASIS_EXTEN}"]\ndays = 365\n'
    recorder.config_path.write_text(text, encoding="utf-8")
    await recorder.start()
    return recorder, signer


async def _calls(recorder: Recorder) -> dict[str, CallReport]:
    """A: recorded to 100, hangs up during the notice, recorded to 400; B meanwhile to 400.

    A's calls are one after another, so each finds its own audit line by A's number.
    """
    scenarios = recorder.scenarios()
    stay, hangup = scenarios["stay"], scenarios["hangup"]

    async def caller_a() -> list[CallReport]:
        return [
            await run_scenario(stay, recorder.options(STASIS_EXTEN), identity=A),
            await run_scenario(hangup, recorder.options(STASIS_EXTEN), identity=A),
            await run_scenario(stay, recorder.options(OTHER_EXTEN), identity=A),
        ]

    (a1, a2, a3), b1 = await asyncio.gather(
        caller_a(), run_scenario(stay, recorder.options(OTHER_EXTEN), identity=B)
    )
    assert_ok(a1, a2, a3, b1)
    return {"a1": a1, "a2": a2, "a3": a3, "b1": b1}


def _cli(capsys: pytest.CaptureFixture[str], recorder: Recorder, *argv: str | Path) -> Run:
    result = run(capsys, *argv, "--config", recorder.config_path)
    assert recorder.running, "a DPO command must never disturb the running recorder"
    return result


def _listed(
    capsys: pytest.CaptureFixture[str], recorder: Recorder, *argv: str
) -> list[dict[str, Any]]:
    result = _cli(capsys, recorder, "recordings", "list", "--json", *argv)
    assert result.code == 0, result.err
    return [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]


def _verified(capsys: pytest.CaptureFixture[str], path: Path, signer: Path) -> str:
    result = run(capsys, "audit", "verify", path, "--signer", signer)
    assert result.code == 0, result.out + result.err
    return result.out


async def test_a_dpo_walks_through_a_callers_rights_beside_a_running_recorder(
    make_recorder: MakeRecorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder, signer = await _office(make_recorder, tmp_path)
    reports = await _calls(recorder)
    lines = {name: line_of(report) for name, report in reports.items()}
    a1, a2, a3, b1 = (lines[n] for n in ("a1", "a2", "a3", "b1"))
    assert [x["decision"] for x in (a1, a2, a3, b1)] == [
        "implied", "declined-hangup", "implied", "implied",
    ]  # fmt: skip
    assert a2["recording_id"] is None
    files = {name: Path(lines[name]["path"]) for name in ("a1", "a3", "b1")}
    raw_audit = recorder.audit_path.read_text(encoding="utf-8")
    assert "4930123456" not in raw_audit and "442079460000" not in raw_audit

    # The running recorder entered every call and recording as it ended.
    def four_entered() -> list[dict[str, Any]] | None:
        found = _listed(capsys, recorder)
        return found if len(found) == 4 else None

    entries = await wait_until(four_entered, 20, "the recorder to enter four calls")
    assert {e["call"]["recorder_id"] for e in entries} == {RECORDER_ID}
    recorded = {r["recording_id"]: r for e in entries for r in e["recordings"]}
    assert sorted(recorded) == sorted(lines[n]["recording_id"] for n in ("a1", "a3", "b1"))
    for name in ("a1", "a3", "b1"):
        entry = recorded[lines[name]["recording_id"]]
        assert entry["signature"] == "signed" and entry["state"] == "present", entry
        assert uri_path(entry["uri"]) == files[name]

    # Found by A's number as the DPO types it, and by date.
    by_number = _listed(capsys, recorder, "--number", A_TYPED)
    assert sorted(e["call"]["call_id"] for e in by_number) == sorted(
        lines[n]["channel"] for n in ("a1", "a2", "a3")
    )
    day = datetime.fromisoformat(a1["time"]).astimezone(UTC).date()
    assert len(_listed(capsys, recorder, "--since", day.isoformat())) == 4
    assert _listed(capsys, recorder, "--until", (day - timedelta(days=1)).isoformat()) == []
    shown = _cli(capsys, recorder, "recordings", "show", a1["recording_id"])
    assert shown.code == 0, shown.err
    assert "present: yes" in shown.out and "signed: signed" in shown.out
    assert f"dialled: {STASIS_EXTEN}" in shown.out and "decision: implied" in shown.out

    desk = Desk(capsys, recorder, signer, lines, files)
    await _export(desk)
    _hold_and_expire(desk)
    _erase(desk)

    # The recorder goes on writing to the audit log the erasure rewrote.
    after = await run_scenario(recorder.scenarios()["stay"], recorder.options(OTHER_EXTEN))
    assert_ok(after)
    verified = _verified(capsys, recorder.audit_path, signer)
    assert "erased: 3 line(s) without their personal fields" in verified
    assert [x for x in recorder.audit() if x.get("channel")][-1]["id"] == line_of(after)["id"]


async def _export(desk: Desk) -> None:
    capsys, recorder, signer, lines, _ = desk
    out = recorder.out / "for-the-caller"
    exported = _cli(
        capsys, recorder, "subject", "export", "--number", A_TYPED,
        "--key", recorder.key_path, "--out", out, "--reason", EXPORT_REASON,
    )  # fmt: skip
    assert exported.code == 0, exported.err
    assert "exported 3 call(s)" in exported.out and "2 recording(s)" in exported.out
    assert "4930123456" not in exported.out + exported.err
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 2
    by_recording = {lines[n]["recording_id"]: n for n in ("a1", "a3")}
    for wav in wavs:
        evidence = json.loads(wav.with_suffix(".json").read_text())
        name = by_recording[evidence["recording_id"]]
        assert abs(sf.info(str(wav)).duration - lines[name]["durations"]["audio"]) <= 0.1
        assert evidence["verdict"] == "complete"
        assert evidence["metadata"][0]["personal"]["caller_number"] == A.number
    everything = b"".join(p.read_bytes() for p in out.iterdir())
    assert B.number.encode() not in everything and b"Bob" not in everything

    page = await open_page(out / "index.html")
    assert page.errors == []
    assert [a["src"] for a in page.audio] == [w.name for w in wavs]
    for audio, wav in zip(page.audio, wavs, strict=True):
        assert audio["error"] is None
        assert abs(audio["duration"] - sf.info(str(wav)).duration) <= 0.1
    assert lines["a1"]["evidence"]["prompt"]["sha256"] in page.text
    assert "You hung up during the notice: nothing was recorded." in page.text

    [access] = _access(recorder)
    assert access["action"] == "subject-export" and access["reason"] == EXPORT_REASON
    assert sorted(access["recordings"]) == sorted(by_recording)
    _verified(capsys, recorder.config.access_log, signer)


def _access(recorder: Recorder) -> list[dict[str, Any]]:
    text = recorder.config.access_log.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def _hold_and_expire(desk: Desk) -> None:
    capsys, recorder, signer, lines, files = desk
    a1, a3, b1 = (lines[n]["recording_id"] for n in ("a1", "a3", "b1"))
    held = _cli(capsys, recorder, "recordings", "hold", b1, "--reason", "court case 7")
    assert held.code == 0, held.err
    with Catalog.from_config(recorder.config) as catalog:
        make_older(catalog, 31)  # retention runs as of now only: the calls were a month ago
    expired = _cli(capsys, recorder, "retention", "run")
    assert expired.code == 0, expired.err
    assert f"{a3} deleted (retention.days = 30;" in expired.out
    assert f"{b1} kept: on hold" in expired.out and a1 not in expired.out
    assert not files["a3"].exists() and files["a1"].exists() and files["b1"].exists()
    shown = _cli(capsys, recorder, "recordings", "show", a3)
    assert shown.code == 0 and "state: deleted" in shown.out
    assert "under retention.days = 30" in shown.out
    actions = [(x["action"], x["recordings"]) for x in _access(recorder)]
    assert actions[-2:] == [("hold", [b1]), ("retention-delete", [a3])]
    _verified(capsys, recorder.config.access_log, signer)


def _erase(desk: Desk) -> None:
    capsys, recorder, signer, lines, files = desk
    a1 = lines["a1"]["recording_id"]
    pseudonym = lines["a1"]["evidence"]["caller"]
    erased = _cli(
        capsys, recorder, "subject", "erase", "--number", A_TYPED, "--reason", ERASE_REASON
    )
    assert erased.code == 0, erased.err
    assert f"deleted 1 recording(s) on recorder {RECORDER_ID}: {a1}" in erased.out
    assert "audit log: personal fields removed from 3 line(s)" in erased.out
    assert not files["a1"].exists() and files["b1"].exists()
    assert pseudonym not in recorder.audit_path.read_text(encoding="utf-8")
    a_calls = {lines[n]["channel"] for n in ("a1", "a2", "a3")}
    for line in recorder.audit():
        if line.get("channel") in a_calls:
            assert "personal_sealed" not in line and "caller" not in line["evidence"]
        elif line.get("channel") == lines["b1"]["channel"]:
            assert open_personal(line, recorder.keys)["caller_number"] == B.number
    assert _listed(capsys, recorder, "--number", A_TYPED) == []
    assert [x["action"] for x in _access(recorder)][-2:] == [
        "subject-erase",
        "erasure-carried-out",
    ]
    _verified(capsys, recorder.config.access_log, signer)
    _verified(capsys, recorder.audit_path, signer)
