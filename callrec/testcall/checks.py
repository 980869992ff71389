"""What a test call must have left behind, checked the way a DPO would.

Given the scenario, the audit line the call produced and the spool, each
check is a named pass/fail with a detail line: the decision, recording present
or absent, the recording verifies, its duration fits the call, its audio
follows what the caller sent, the evidence names the prompt by hash.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from callrec.audio import envelope_correlation, resample
from callrec.crypto.keys import PrivateKey
from callrec.decode import Decoded, decode_recording
from callrec.errors import CallrecError
from callrec.recording import Verdict
from callrec.spool import SEALED_SUFFIX
from callrec.testcall.scenarios import Scenario

MIN_CORRELATION = 0.6
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX_ID = re.compile(r"^[0-9a-f]{8,64}$")


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def find_recording(spool: Path, recording_id: str) -> Path | None:
    """The sealed (or crash-left) file of ``recording_id`` anywhere in the spool."""
    if not _HEX_ID.match(recording_id):
        return None
    sealed = f"{recording_id}{SEALED_SUFFIX}"
    for pattern in (f"*/*/*/{sealed}", f"**/{sealed}*"):
        found = sorted(spool.glob(pattern))
        if found:
            return found[0]
    return None


def check_call(
    scenario: Scenario,
    record: dict[str, Any],
    *,
    spool: Path,
    keys: Sequence[PrivateKey],
    sent: npt.NDArray[np.int16],
    sent_rate: int,
) -> list[Check]:
    """Every check for one call; never raises for what it finds."""
    decision = record.get("decision")
    checks = [
        Check(
            "decision",
            decision == scenario.expect_decision,
            f"audit says {decision!r}, expected {scenario.expect_decision!r}",
        ),
        _prompt_check(record),
    ]
    recording_id = record.get("recording_id")
    if not scenario.expect_recording:
        checks.append(
            Check("no recording", recording_id is None, f"recording id {recording_id!r}")
        )
        return checks
    if not isinstance(recording_id, str):
        checks.append(Check("recording present", False, "the audit line names no recording"))
        return checks
    path = find_recording(spool, recording_id)
    checks.append(Check("recording present", path is not None, f"{recording_id} in {spool}"))
    if path is not None:
        checks += _recording_checks(path, record, keys, sent, sent_rate, scenario.hold)
    return checks


def _prompt_check(record: dict[str, Any]) -> Check:
    evidence = record.get("evidence") or {}
    prompt = evidence.get("prompt") or {}
    digest = str(prompt.get("sha256"))
    return Check(
        "evidence names the prompt",
        bool(prompt.get("id")) and bool(_HEX64.match(digest)),
        f"prompt {prompt.get('id')!r} sha256 {digest[:16]}...",
    )


def _recording_checks(
    path: Path,
    record: dict[str, Any],
    keys: Sequence[PrivateKey],
    sent: npt.NDArray[np.int16],
    sent_rate: int,
    call_seconds: float,
) -> list[Check]:
    try:
        decoded = decode_recording(path, keys)
    except CallrecError as exc:
        return [Check("verifies", False, str(exc))]
    checks = [
        Check(
            "verifies",
            decoded.verdict is Verdict.COMPLETE,
            f"{decoded.verdict}{'' if decoded.error is None else f': {decoded.error}'}",
        )
    ]
    seconds = len(decoded.samples) / decoded.rate
    # "audio" is what was written (gaps as silence) and "paused" what decodes as
    # silence besides; a line without them has only the wall-clock "recording".
    durations = record.get("durations") or {}
    expected = durations.get("audio", durations.get("recording")) or 0.0
    if "audio" in durations:
        expected += durations.get("paused") or 0.0
    checks.append(
        Check(
            "duration fits the call",
            0 < seconds <= call_seconds + 0.5
            and abs(seconds - float(expected)) <= max(0.5, 0.05 * seconds),
            f"{seconds:.2f} s of audio in a {call_seconds:.2f} s call,"
            f" {float(expected):.2f} s recorded per the audit line",
        )
    )
    first = decoded.metadata[0] if decoded.metadata else {}
    checks.append(
        Check(
            "evidence is the first record",
            first.get("kind") == "consent-evidence"
            and first.get("decision") == record.get("decision"),
            f"first metadata record kind {first.get('kind')!r}",
        )
    )
    corr = _follows(sent[sent_before_recording(record, sent_rate) :], sent_rate, decoded)
    checks.append(
        Check(
            "audio follows what was sent",
            corr >= MIN_CORRELATION,
            f"envelope correlation {corr:.2f} (at least {MIN_CORRELATION})",
        )
    )
    return checks


def sent_before_recording(record: dict[str, Any], rate: int) -> int:
    """Samples of the caller's audio sent before recording began (the disclosure)."""
    times = (record.get("evidence") or {}).get("times") or {}
    try:
        answer = datetime.fromisoformat(times["answer"])
        start = datetime.fromisoformat(times["recording_start"])
    except (KeyError, TypeError, ValueError):
        return 0
    return max(0, round((start - answer).total_seconds() * rate))


def _follows(sent: npt.NDArray[np.int16], sent_rate: int, decoded: Decoded) -> float:
    got = resample(decoded.mono(), decoded.rate, sent_rate)
    n = min(len(got), len(sent))
    return envelope_correlation(sent[:n], got[:n], sent_rate)
