"""What a call's audit line says, in the audit log's schema (``callrec.audit``).

Kept apart from the session so the state machine stays about the call; these
are pure functions of what the session collected.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from callrec.consent import ConsentPolicy
from callrec.tap import TapResult

# RtpStats field -> audit schema name (callrec/audit.py "packets").
_PACKET_NAMES = {
    "packets": "received",
    "lost": "lost",
    "duplicates": "duplicated",
    "reordered": "reordered",
    "foreign": "foreign",
    "late": "late",
    "bad": "bad",
}


def packet_counts(stats: Mapping[str, Any]) -> dict[str, int]:
    """The recorder's counters under the audit schema's names."""
    return {name: int(stats.get(key) or 0) for key, name in _PACKET_NAMES.items()}


def recording_fields(result: TapResult, sample_rate: int) -> dict[str, Any]:
    """recording_id, segments, last_tag_sha256, packets, path and audio durations."""
    gaps = int(result.stats.get("gap_samples") or 0) / sample_rate
    fields: dict[str, Any] = {
        "recording_id": result.recording_id,
        "packets": packet_counts(result.stats),
        "sealed": result.seal is not None,
        "durations": {"gaps": gaps},
    }
    seal = result.seal
    if seal is None:
        fields["path"] = str(result.unsealed)
        return fields
    fields.update(
        path=str(seal.path),
        segments=seal.segments,
        last_tag_sha256=seal.last_tag_sha256,
        size=seal.size,
    )
    fields["durations"]["audio"] = seal.audio_seconds
    return fields


def policy_record(policy: ConsentPolicy) -> dict[str, Any]:
    """The consent policy in force, for the evidence."""
    return {
        "mode": policy.mode,
        "grace": policy.grace,
        "optout_digit": policy.optout_digit,
        "accept_digit": policy.accept_digit,
        "timeout": policy.timeout,
        "on_decline": policy.on_decline,
    }
