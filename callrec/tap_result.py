"""What a stopped recording tap produced, and its part of the call's audit line.

Kept apart from :mod:`callrec.tap` (which re-exports :class:`TapResult`) so
the tap's module holds the tap alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.evidence import Evidence
from callrec.pausing import NO_PAUSES, PauseTotals
from callrec.recording import SealInfo


@dataclass(frozen=True, slots=True)
class TapResult:
    """What a stopped tap produced: the sealed file and the packet counts.

    ``seal`` is None when the recording could not be sealed (the disk filled
    up): ``unsealed`` then names the ``.crec.part`` left in the spool.
    """

    recording_id: str
    seal: SealInfo | None
    stats: Mapping[str, Any]
    reason: str
    sample_rate: int
    unsealed: Path | None = None
    seal_seconds: float | None = None  # from stop() to the file sealed
    pauses: PauseTotals = NO_PAUSES

    def audit_outcome(self, event: str, reason: str | None) -> tuple[str, str | None]:
        """The audit line's event and reason given this recording's end.

        A recording that was never sealed (its ``.crec.part`` stays for
        start-up adoption; verify calls it TRUNCATED) makes the line a
        failure, whatever else the call did.
        """
        if self.seal is not None:
            return event, reason
        return "failure", NOT_SEALED if not reason else f"{reason}; {NOT_SEALED}"

    def audit_fields(self, evidence: Evidence) -> dict[str, Any]:
        """The recording's part of an audit line (``callrec.audit`` schema 2).

        The same keys from both front ends: ``recording_id``, ``packets``,
        ``sealed``, ``path``, ``segments``, ``last_tag_sha256``, ``size``,
        ``recording_signer`` (fingerprint of the recorder key that signed it,
        or null), ``pauses`` (how many) and ``durations`` (``recording``, ``audio``
        recovered, ``gaps`` lost, ``paused``).
        """
        gaps = int(self.stats.get("gap_samples") or 0) / self.sample_rate
        durations: dict[str, float] = {"gaps": gaps, "paused": self.pauses.seconds}
        started, ended = evidence.recording_started_at, evidence.recording_ended_at
        if started is not None and ended is not None:
            durations["recording"] = ended - started
        fields: dict[str, Any] = {
            "recording_id": self.recording_id,
            "packets": {name: int(self.stats.get(key) or 0) for key, name in _PACKET_NAMES},
            "sealed": self.seal is not None,
            "path": str(self.unsealed),
            "durations": durations,
            "pauses": self.pauses.count,
        }
        if self.seal is not None:
            durations["audio"] = float(self.seal.audio_seconds)
            if self.seal_seconds is not None:
                durations["seal"] = self.seal_seconds
            fields.update(
                path=str(self.seal.path),
                segments=self.seal.segments,
                last_tag_sha256=self.seal.last_tag_sha256,
                size=self.seal.size,
                recording_signer=self.seal.signer,
            )
        return fields


def closing_summary(
    reason: str,
    started: float | None,
    ended: float,
    packets: Mapping[str, Any],
    pauses: list[dict[str, Any]],
    failure: str | None = None,
) -> dict[str, Any]:
    """A recording's last metadata record (docs/FORMAT.md "Closing summary").

    ``failure``: the writer's error when the recording ended because its
    writer failed (a full disk, the length limit), so the file itself says
    why it ended early; absent otherwise.
    """
    record: dict[str, Any] = {
        "type": "summary",
        "reason": reason,
        "recording_started": started,
        "recording_ended": ended,
        "recorded_seconds": None if started is None else ended - started,
        "packets": packets,
        "pauses": pauses,
    }
    if failure is not None:
        record["failure"] = failure
    return record


# RtpStats field -> audit schema name (callrec/audit.py "packets").
_PACKET_NAMES = (
    ("packets", "received"),
    ("lost", "lost"),
    ("duplicates", "duplicated"),
    ("reordered", "reordered"),
    ("foreign", "foreign"),
    ("late", "late"),
    ("bad", "bad"),
)


NOT_SEALED = "recording not sealed"
