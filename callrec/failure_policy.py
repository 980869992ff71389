"""``recording.on_failure``: what a call does when it cannot be recorded.

When recording cannot run (no key, spool full or missing, the disclosure
could not be played, the PBX refused the media setup), ``best-effort``
connects the call unrecorded and logs an alert; ``strict`` refuses the call
with the "recording unavailable" announcement. Either way there is a clear
log line, an audit line, and nothing in the clear on disk.

Mid-call, a lost media stream keeps a best-effort recording open (the audio
may come back after a gap); see :func:`callrec.tap.ends_recording`.
"""

from __future__ import annotations

from typing import Literal

FailurePolicy = Literal["best-effort", "strict"]
BEST_EFFORT: FailurePolicy = "best-effort"
STRICT: FailurePolicy = "strict"


def is_strict(policy: str) -> bool:
    """Whether the policy refuses calls that cannot be recorded (``strict``);
    ``best-effort`` lets them go on unrecorded."""
    return policy == STRICT
