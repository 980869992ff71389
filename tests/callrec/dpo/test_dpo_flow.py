"""A DPO's year with two callers, end to end through the simulator.

Calls are recorded by the real app, entered into the catalogue, listed by
date and by number, exported for one caller and opened in a real headless
browser, held, expired by ``retention run`` (previewed ``--as-of`` a later
date), and erased; after each step the files, the catalogue, the audit log,
the access log and ``audit verify`` say what a data-protection officer
expects.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import soundfile as sf

from callrec.ari.sim import CallerScenario
from callrec.audit import open_personal
from callrec.catalog import RecordingState
from callrec.dpo.subjects import pseudonym_of
from tests.ari_app.conftest import DISCLOSURE, GRACE
from tests.callrec.cli_support import Run, run
from tests.callrec.dpo.browser import open_page
from tests.callrec.dpo.conftest import DAYS, RECORDER, Office
from tests.callrec.dpo.recorders import make_older

A_NUMBER = "+4930123456"  # as the PBX presents it
A_TYPED = "+49 (30) 123-456"  # as the DPO types it from a letter
B_NUMBER = "+442079460000"
EXPORT_REASON = "access request 2026-17"
ERASE_REASON = "erasure request 2026-18"


async def _place_calls(office: Office) -> dict[str, dict[str, Any]]:
    """Caller A: recorded to 100, hung up during the notice, recorded to 400; B: to 400."""
    recorded = DISCLOSURE + GRACE
    plan = {
        "a1": CallerScenario(exten="100", caller_number=A_NUMBER, hangup_after=recorded + 3.0),
        "a2": CallerScenario(exten="100", caller_number=A_NUMBER, hangup_after=DISCLOSURE / 2),
        "a3": CallerScenario(exten="400", caller_number=A_NUMBER, hangup_after=recorded + 2.0),
        "b1": CallerScenario(exten="400", caller_number=B_NUMBER, hangup_after=recorded + 2.5),
    }
    channels = {}
    for name, scenario in plan.items():
        scenario.audio = office.voice_path
        scenario.caller_name = "Alice Example" if name.startswith("a") else "Bob Example"
        channels[name] = office.sim.place_call(scenario)
    return {name: await office.wait_audit(channel) for name, channel in channels.items()}


def _cli(capsys: pytest.CaptureFixture[str], office: Office, *argv: str | Path) -> Run:
    return run(capsys, *argv, "--config", office.config_path)


def _verify(capsys: pytest.CaptureFixture[str], office: Office, path: Path) -> Run:
    result = run(capsys, "audit", "verify", path, "--signer", office.signer_pub)
    assert result.code == 0, result.out
    return result


def _listed(capsys: pytest.CaptureFixture[str], office: Office, *argv: str) -> list[Any]:
    result = _cli(capsys, office, "recordings", "list", "--json", *argv)
    assert result.code == 0, result.err
    return [json.loads(line) for line in result.out.splitlines() if line.startswith("{")]


def _access(office: Office) -> list[dict[str, Any]]:
    return [json.loads(line) for line in office.access_path.read_text().splitlines()]


def _as_of(line: dict[str, Any], days: int) -> str:
    """The date ``days`` after the call's day (midnight UTC)."""
    return (datetime.fromisoformat(line["time"]).date() + timedelta(days=days)).isoformat()


async def test_a_dpo_finds_exports_holds_expires_and_erases(
    office: Office, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = await _place_calls(office)
    a1, a2, a3, b1 = (lines[n] for n in ("a1", "a2", "a3", "b1"))
    assert [a1["decision"], a2["decision"], a3["decision"]] == [
        "implied",
        "declined-hangup",
        "implied",
    ]
    assert a2["recording_id"] is None
    files = {name: Path(lines[name]["path"]) for name in ("a1", "a3", "b1")}
    office.enter_calls()
    pseudonym = pseudonym_of(A_TYPED, office.config)
    assert pseudonym == a1["evidence"]["caller"]  # the typed number finds the PBX's

    # Listed by number (as the DPO types it) and by date.
    by_number = _listed(capsys, office, "--number", A_TYPED)
    assert sorted(e["call"]["call_id"] for e in by_number) == sorted(
        lines[n]["channel"] for n in ("a1", "a2", "a3")
    )
    day = datetime.fromisoformat(a1["time"]).astimezone(UTC).date()
    assert len(_listed(capsys, office, "--since", day.isoformat())) == 4
    assert _listed(capsys, office, "--until", (day - timedelta(days=1)).isoformat()) == []

    await _export_and_open(office, capsys, lines)
    _hold_and_expire(office, capsys, lines, files)
    _erase(office, capsys, lines, files, pseudonym)

    # B's hold released: the next run deletes it too.
    released = _cli(
        capsys, office, "recordings", "release", b1["recording_id"], "--reason", "case closed"
    )
    assert released.code == 0, released.err
    expired = _cli(capsys, office, "retention", "run")
    assert expired.code == 0, expired.err
    assert f"{b1['recording_id']} deleted (retention.days = 30;" in expired.out
    assert not files["b1"].exists()
    assert [line["action"] for line in _access(office)][-2:] == ["release", "retention-delete"]
    _verify(capsys, office, office.access_path)
    _verify(capsys, office, office.audit_path)
    _tamper_each_access_line(office, capsys)


def _tamper_each_access_line(office: Office, capsys: pytest.CaptureFixture[str]) -> None:
    """Every access line, of every action, is named by ``audit verify`` once it is edited."""
    path = office.access_path
    original = path.read_text().splitlines(keepends=True)
    assert {json.loads(line)["action"] for line in original} == {
        "subject-export", "hold", "retention-delete", "subject-erase",
        "erasure-carried-out", "release",
    }  # fmt: skip
    for number in range(1, len(original) + 1):
        edited = list(original)
        line = json.loads(edited[number - 1])
        line["reason"] = "nothing to see"  # a reason rewritten after the fact
        edited[number - 1] = json.dumps(line, sort_keys=True, separators=(",", ":")) + "\n"
        path.write_text("".join(edited))
        result = run(capsys, "audit", "verify", path, "--signer", office.signer_pub)
        assert result.code == 4
        assert result.out.startswith(f"{path}: line {number}: signature does not verify")
    path.write_text("".join(original))


async def _export_and_open(
    office: Office, capsys: pytest.CaptureFixture[str], lines: dict[str, dict[str, Any]]
) -> None:
    out = office.out / "for-the-caller"
    exported = run(
        capsys, "subject", "export", "--number", A_TYPED, "--key", office.key_path,
        "--out", out, "--reason", EXPORT_REASON, "--config", office.config_path,
    )  # fmt: skip
    assert exported.code == 0, exported.err
    assert "exported 3 call(s)" in exported.out and "2 recording(s)" in exported.out
    assert "4930123456" not in exported.out + exported.err  # never the number on a terminal
    wavs = sorted(out.glob("*.wav"))
    assert len(wavs) == 2
    by_recording = {lines[n]["recording_id"]: n for n in ("a1", "a3")}
    for wav in wavs:  # the calls are numbered by when they were answered
        evidence = json.loads(wav.with_suffix(".json").read_text())
        name = by_recording[evidence["recording_id"]]
        seconds = sf.info(str(wav)).duration
        assert abs(seconds - lines[name]["durations"]["audio"]) <= 0.1
        consent = evidence["metadata"][0]
        assert consent["kind"] == "consent-evidence"
        assert consent["uniqueid"] == lines[name]["channel"]
        assert consent["personal"]["caller_number"] == A_NUMBER
        assert evidence["verdict"] == "complete"
    everything = b"".join(p.read_bytes() for p in out.iterdir())
    assert B_NUMBER.encode() not in everything and b"Bob" not in everything
    assert oct(out.stat().st_mode & 0o777) == "0o700"
    assert all(oct(p.stat().st_mode & 0o777) == "0o600" for p in out.iterdir())

    page = await open_page(out / "index.html")
    assert page.errors == []
    assert all(url.startswith(out.resolve().as_uri() + "/") for url in page.requests[1:])
    assert [a["src"] for a in page.audio] == [w.name for w in wavs]
    for audio, wav in zip(page.audio, wavs, strict=True):
        assert audio["error"] is None
        assert abs(audio["duration"] - sf.info(str(wav)).duration) <= 0.1
        assert abs(audio["duration"] - float(audio["seconds"])) <= 0.1
    a1 = lines["a1"]["evidence"]
    assert a1["prompt"]["sha256"] in page.text and "en/callrec/disclosure" in page.text
    assert "You stayed on the line after the notice" in page.text
    assert "You hung up during the notice: nothing was recorded." in page.text
    for dialled in ("100", "400"):
        assert f"\t{dialled}\t" in page.text

    [line] = _access(office)
    assert line["action"] == "subject-export" and line["reason"] == EXPORT_REASON
    assert sorted(line["recordings"]) == sorted(by_recording)
    assert line["host"] == socket.gethostname() and len(line["key_ids"]) == 1
    _verify(capsys, office, office.access_path)


def _hold_and_expire(
    office: Office,
    capsys: pytest.CaptureFixture[str],
    lines: dict[str, dict[str, Any]],
    files: dict[str, Path],
) -> None:
    a1, a3, b1 = (lines[n]["recording_id"] for n in ("a1", "a3", "b1"))
    held = _cli(capsys, office, "recordings", "hold", b1, "--reason", "court case 7")
    assert held.code == 0, held.err

    preview = _cli(
        capsys, office, "retention", "run", "--dry-run", "--as-of", _as_of(lines["a1"], 366)
    )
    assert preview.code == 0, preview.err
    assert f'{a1} would delete (retention.numbers."100".days = 365;' in preview.out
    assert f"{b1} kept: on hold (retention.days = 30;" in preview.out
    assert all(f.exists() for f in files.values())

    # A date to come really deleting would cut every retention short: only a preview may.
    future = _cli(capsys, office, "retention", "run", "--as-of", _as_of(lines["a3"], 31))
    assert future.code == 2
    assert "--as-of" in future.err and "in the future" in future.err and "--dry-run" in future.err
    assert all(f.exists() for f in files.values())
    assert [line["action"] for line in _access(office)][-1] == "hold"

    _age(office, DAYS + 1)
    before = datetime.now(UTC)
    expired = _cli(capsys, office, "retention", "run")
    assert expired.code == 0, expired.err
    assert f"{a3} deleted (retention.days = 30;" in expired.out
    assert f"{b1} kept: on hold" in expired.out and "court case 7" in expired.out
    assert a1 not in expired.out
    assert "1 deleted, 1 kept: on hold" in expired.out
    assert not files["a3"].exists() and files["a1"].exists() and files["b1"].exists()

    catalog = office.catalog()
    tomb = catalog.recording(a3)
    assert tomb is not None and tomb.state is RecordingState.DELETED and tomb.deletion
    assert tomb.deletion.rule == "retention.days = 30"
    assert tomb.deletion.by.endswith("@" + socket.gethostname())
    kept = catalog.recording(b1)
    assert kept is not None and kept.state is RecordingState.HELD
    catalog.close()
    actions = [(line["action"], line["recordings"], line["reason"]) for line in _access(office)]
    assert actions[-2:] == [
        ("hold", [b1], "court case 7"),
        ("retention-delete", [a3], "retention.days = 30"),
    ]
    judged = datetime.fromisoformat(_access(office)[-1]["as_of"])
    assert before <= judged <= datetime.now(UTC)  # the run's "now", recorded with the rule
    _verify(capsys, office, office.access_path)


def _age(office: Office, days: int) -> None:
    catalog = office.catalog()
    make_older(catalog, days)
    catalog.close()


def _erase(
    office: Office,
    capsys: pytest.CaptureFixture[str],
    lines: dict[str, dict[str, Any]],
    files: dict[str, Path],
    pseudonym: str,
) -> None:
    a1 = lines["a1"]["recording_id"]
    erased = _cli(
        capsys, office, "subject", "erase", "--number", A_TYPED, "--reason", ERASE_REASON
    )
    assert erased.code == 0, erased.err
    assert f"deleted 1 recording(s) on recorder {RECORDER}: {a1}" in erased.out
    assert "audit log: personal fields removed from 3 line(s)" in erased.out
    assert "order carried out and confirmed" in erased.out
    assert not files["a1"].exists() and files["b1"].exists()

    raw = office.audit_path.read_text()
    assert pseudonym not in raw
    for line in office.audit():
        if line.get("channel") in {lines[n]["channel"] for n in ("a1", "a2", "a3")}:
            assert "personal_sealed" not in line and "personal_salt" not in line
            assert "caller" not in line["evidence"] and line["personal_digest"]
        elif line.get("channel") == lines["b1"]["channel"]:
            assert open_personal(line, office.keys)["caller_number"] == B_NUMBER
    verified = _verify(capsys, office, office.audit_path)
    assert "erased: 3 line(s) without their personal fields" in verified.out

    catalog = office.catalog()
    assert catalog.list(pseudonym=pseudonym) == []
    tomb = catalog.recording(a1)
    assert tomb is not None and tomb.deletion is not None
    [order] = catalog.erasure_orders()
    assert tomb.deletion.rule == f"erasure order {order.order_id}"
    assert order.pending == () and order.reason == ERASE_REASON
    catalog.close()
    erase_line, carried = _access(office)[-2:]
    assert erase_line["action"] == "subject-erase" and erase_line["order"] == order.order_id
    assert erase_line["reason"] == ERASE_REASON
    assert carried["action"] == "erasure-carried-out" and carried["recordings"] == [a1]
    _verify(capsys, office, office.access_path)

    again = run(
        capsys, "subject", "export", "--number", A_TYPED, "--key", office.key_path,
        "--out", office.out / "after", "--reason", "follow-up", "--config", office.config_path,
    )  # fmt: skip
    assert again.code == 0, again.err
    assert "exported 0 call(s)" in again.out
    assert (
        "No calls from this number were found."
        in (office.out / "after" / "index.html").read_text()
    )
