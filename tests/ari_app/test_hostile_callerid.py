"""Hostile caller IDs (trace 09) reach logs, audit and ``inspect`` escaped, never a path."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path

import pytest

from callrec.ari.sim import CallerScenario
from tests.ari_app.conftest import DISCLOSURE, GRACE, Rig

ROOT = Path(__file__).resolve().parents[2]

# (display name, SIP user part) as the SIP side sends them; trace 09's variants.
HOSTILE: list[tuple[str | bytes, str]] = [
    ("../../etc/passwd", "../../etc/passwd"),
    ('Robert\\"); DROP TABLE calls;-- <b>x</b>', "1234;evil=1"),
    ("ctl\x01\x07\x1bred\x7fend", "ctl"),
    ("L" * 600, "long"),
    ("Jürgen Müßig", "j%C3%BCrgen"),
    (b"J\xfcrgen M\xfc\xdfig", "latin1"),
    ("Eve\nINFO forged log line", "+4930123456"),
]
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


async def test_hostile_caller_ids_arrive_escaped_and_never_in_a_path(
    running: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig = running
    caplog.set_level(logging.INFO)
    talk = DISCLOSURE + GRACE + 0.8
    ids = [
        rig.sim.place_call(
            CallerScenario(exten="100", caller_name=name, caller_number=number, hangup_after=talk)
        )
        for name, number in HOSTILE
    ]
    ids.append(rig.sim.place_call(CallerScenario(exten="../../tmp/x", hangup_after=talk)))
    lines = [await rig.wait_audit(i) for i in ids]

    messages = [
        r.getMessage() for r in caplog.records if r.name.startswith(("ari_app", "callrec"))
    ]
    assert messages
    assert not [m for m in messages if CONTROL.search(m)]
    # Names are personal data (and often the number itself): never logged;
    # every call's lines carry its channel id instead.
    for fragment in ("forged", "DROP TABLE", "passwd", "Jürgen", "4930123456"):
        assert not any(fragment in m for m in messages), fragment
    for channel in ids:
        assert any(m.startswith(f"[{channel}]") for m in messages), channel

    audit = rig.audit_path.read_text(encoding="utf-8")
    for fragment in ("passwd", "DROP TABLE", "Jürgen", "forged", "4930123456"):
        assert fragment not in audit
    assert all(line["evidence"]["caller"].startswith("p1:") for line in lines)
    assert lines[-1]["end"] == "destination-unavailable"

    for path in rig.out.rglob("*"):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", path.name), path
    recordings = rig.sealed()
    assert len(recordings) == len(HOSTILE)

    outputs = await asyncio.gather(*(_inspect(rig, path) for path in recordings))
    text = "\n".join(outputs)
    assert not CONTROL.search(text.replace("\n", ""))
    assert "../../etc/passwd" in text  # shown (escaped as needed), not used as a path
    assert "\\x1b" in text or "\\u001b" in text


async def _inspect(rig: Rig, path: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callrec",
        "inspect",
        str(path),
        "--key",
        str(rig.out / "demo.key"),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode("utf-8")
