"""Hostile caller IDs from real SIP callers (trace 09's set), all at once.

What Asterisk makes of each From header (names cut to 79 characters, URI
parameters dropped, numbers percent-decoded, invalid UTF-8 replaced, a raw
UTF-8 user part refused) reaches callrec's sealed personal fields and nothing
else: the audit log, callrec's own log and the spool's file names never carry
a caller's name or number, and ``callrec inspect`` shows names escaped.
"""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from callrec.audit import open_personal
from callrec.testcall.harness import Identity, build_pcap, run_scenario
from callrec.testcall.sipp import SippCall, place_call

from .conftest import ROOT, STASIS_EXTEN, Recorder, assert_ok, line_of

pytestmark = pytest.mark.realpbx

LATIN1 = b"J\xfcrgen M\xfc\xdfig".decode("utf-8", "surrogateescape")
LONG_NAME = "A" * 300 + "B" * 300
# (variant, what the caller sends, the caller name Asterisk hands on)
HOSTILE: list[tuple[str, Identity, str]] = [
    ("baseline", Identity("+4930123456", display=None), ""),
    ("path", Identity("../../etc/passwd", "../../etc/passwd"), "../../etc/passwd"),
    (
        "quotes-semicolons",
        Identity("1234;evil=1", 'Robert\\"); DROP TABLE calls;-- <b>x</b>', reported="1234"),
        'Robert\\"); DROP TABLE calls;-- <b>x</b>',
    ),
    ("control-chars", Identity("ctl", "ctl\x01\x07\x1bred\x7fend"), "ctl\x01\x07\x1bred\x7fend"),
    ("long-name", Identity("long", LONG_NAME), LONG_NAME[:79]),
    ("long-user", Identity("1" * 300, "Long User", reported="1" * 79), "Long User"),
    ("utf8", Identity("j%C3%BCrgen", "Jürgen Müßig", reported="jürgen"), "Jürgen Müßig"),
    ("latin1", Identity("latin1", LATIN1), "J\ufffdrgen M\ufffd\ufffdig"),
    ("unquoted", Identity("evil", "Evil Caller Name", quoted=False), "Evil Caller Name"),
]
# Fragments of names and numbers that must stay sealed.
PERSONAL = (
    "passwd",
    "DROP TABLE",
    "Jürgen",
    "jürgen",
    "4930123456",
    "Evil",
    "AAAAAAAA",
    "1111111",
)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


async def _never_reaches_the_app(recorder: Recorder, tmp: Path) -> bool:
    """Raw UTF-8 in the From user part: Asterisk drops the INVITE unanswered."""
    scenario = recorder.scenarios()["stay"]
    build_pcap(scenario, recorder.options(STASIS_EXTEN).audio, tmp / "caller.pcap")
    call = SippCall(
        target=recorder.pbx.sip_target,
        exten=STASIS_EXTEN,
        caller="jürgen",
        pcap=tmp / "caller.pcap",
        hold=scenario.hold,
        name="utf8-raw-user",
        display="Jürgen",
        timeout=6.0,
    )
    return (await place_call(call, tmp)).answered


async def test_hostile_caller_ids_stay_sealed_and_never_reach_a_path_or_log(
    recorder: Recorder, tmp_path: Path
) -> None:
    stay = recorder.scenarios()["stay"]
    options = recorder.options(STASIS_EXTEN)
    reports, raw_answered = await asyncio.gather(
        asyncio.gather(*(run_scenario(stay, options, identity=who) for _, who, _ in HOSTILE)),
        _never_reaches_the_app(recorder, tmp_path),
    )
    assert_ok(*reports)
    assert not raw_answered
    lines = [line_of(r) for r in reports]
    calls = [x for x in recorder.audit() if x["event"] != "service"]
    assert len(calls) == len(HOSTILE)  # nothing for the refused INVITE

    # The sealed personal fields hold what Asterisk handed on, as trace 09 shows.
    for (variant, who, name), line in zip(HOSTILE, lines, strict=True):
        personal = open_personal(line, recorder.keys)
        assert (personal["caller_number"], personal.get("caller_name", "")) == (
            who.number,
            name,
        ), variant

    audit = recorder.audit_path.read_text(encoding="utf-8")
    log = recorder.log_text()
    for fragment in PERSONAL:
        assert fragment not in audit, fragment
        assert fragment not in log, fragment
    assert not CONTROL.search(log)
    for path in recorder.out.rglob("*"):
        assert re.fullmatch(r"[A-Za-z0-9._-]+", path.name), path

    outputs = await asyncio.gather(*(_inspect(recorder, p) for p in recorder.sealed()))
    shown = "\n".join(outputs)
    assert len(outputs) == len(HOSTILE)
    assert not CONTROL.search(shown)
    assert "../../etc/passwd" in shown  # shown, escaped as needed, never used as a path
    assert "\\x1b" in shown or "\\u001b" in shown


async def _inspect(recorder: Recorder, path: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callrec",
        "inspect",
        str(path),
        "--key",
        str(recorder.key_path),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    return out.decode("utf-8")
