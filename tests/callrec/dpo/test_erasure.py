"""Erasure across recorders: an order in the shared catalogue, carried out by each recorder."""

from __future__ import annotations

from pathlib import Path

import pytest

from callrec.catalog import Catalog
from callrec.dpo.desk import Desk
from callrec.dpo.holds import hold, release
from callrec.dpo.subjects import pseudonym_of
from tests.callrec.cli_support import Run, run
from tests.callrec.dpo.recorders import Recorder

ALICE = "+4930123456"
BOB = "+4940555000"


def _erase(capsys: pytest.CaptureFixture[str], recorder: Recorder, *argv: str) -> Run:
    return run(capsys, "subject", "erase", *argv, "--config", recorder.config_path)


def _verify(capsys: pytest.CaptureFixture[str], path: Path) -> Run:
    result = run(capsys, "audit", "verify", path)
    assert result.code == 0, result.out
    return result


def test_each_recorder_carries_out_its_part_and_the_order_waits_for_all(
    recorders: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = recorders
    _, alice_on_a = a.call(ALICE)
    _, bob_on_a = a.call(BOB)
    alice_b_id, alice_on_b = b.call(ALICE)
    pseudonym = pseudonym_of(ALICE, a.config)

    ordered = _erase(capsys, a, "--number", ALICE, "--reason", "request 18")
    assert ordered.code == 0, ordered.err
    assert "deleted 1 recording(s) on recorder rec-a" in ordered.out
    assert "waiting for recorder(s): rec-b" in ordered.out
    assert not alice_on_a.exists() and bob_on_a.exists()
    assert alice_on_b.exists()  # another recorder's file: its own job
    assert pseudonym not in a.audit_path.read_text() and pseudonym in b.audit_path.read_text()
    catalog = Catalog.from_config(a.config)
    [order] = catalog.erasure_orders()
    assert order.pending == ("rec-b",)
    catalog.close()
    shown = run(capsys, "recordings", "show", alice_b_id, "--config", b.config_path)
    assert shown.code == 0, shown.err
    assert f"erasure order {order.order_id}" in shown.out
    assert "not yet carried out by rec-b" in shown.out

    carried = _erase(capsys, b, "--carry-out")
    assert carried.code == 0, carried.err
    assert f"deleted 1 recording(s) on recorder rec-b: {alice_b_id}" in carried.out
    assert not alice_on_b.exists()
    assert pseudonym not in b.audit_path.read_text()
    catalog = Catalog.from_config(b.config)
    [order] = catalog.erasure_orders()
    assert order.pending == ()
    assert catalog.list(pseudonym=pseudonym) == []
    assert len(catalog.list(pseudonym=pseudonym_of(BOB, a.config))) == 1
    catalog.close()
    for recorder in recorders:
        _verify(capsys, recorder.audit_path)
        _verify(capsys, recorder.config.access_log)

    nothing = _erase(capsys, b, "--carry-out")
    assert nothing.code == 0
    assert "no erasure order pending on recorder rec-b" in nothing.out


def test_a_held_recording_is_kept_and_the_order_waits_for_its_release(
    recorders: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = recorders
    held_id, held = a.call(ALICE)
    _, other = a.call(ALICE, dialled="400")
    with Desk.open(a.config_path) as desk:
        hold(desk, held_id, "court case 7")

    first = _erase(capsys, a, "--number", ALICE, "--reason", "request 19")
    assert first.code == 0  # all it lawfully could: the hold is no failure
    assert f"{held_id} kept: on legal hold" in first.err
    assert "order still pending on recorder rec-a" in first.out
    assert held.exists() and not other.exists()
    pseudonym = pseudonym_of(ALICE, a.config)
    assert pseudonym in a.audit_path.read_text()  # not erased while a recording is kept

    with Desk.open(a.config_path) as desk:
        release(desk, held_id, "case closed")
    done = _erase(capsys, a, "--carry-out")
    assert done.code == 0, done.err
    assert f"deleted 1 recording(s) on recorder rec-a: {held_id}" in done.out
    assert "order carried out and confirmed" in done.out
    assert not held.exists()
    assert pseudonym not in a.audit_path.read_text()
    assert "erased: 2 line(s)" in _verify(capsys, a.audit_path).out


def test_erasing_needs_a_reason_and_a_number(
    recorders: tuple[Recorder, Recorder], capsys: pytest.CaptureFixture[str]
) -> None:
    a, _ = recorders
    _, kept = a.call(ALICE)
    no_reason = _erase(capsys, a, "--number", ALICE)
    assert no_reason.code == 2
    assert "--reason is required" in no_reason.err
    with pytest.raises(SystemExit) as usage:
        _erase(capsys, a, "--reason", "x")
    assert usage.value.code == 2
    blank = _erase(capsys, a, "--number", "  -  ", "--reason", "request 20")
    assert blank.code == 1
    assert "--number: give the caller's number" in blank.err
    assert kept.exists()
    assert not a.config.access_log.exists()
