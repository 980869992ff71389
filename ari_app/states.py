"""The words of a call's flow: where it is (:class:`State`) and what it may do
next (:class:`Admission`). Shared by the session, its crash-safe record
(:mod:`ari_app.journal`) and the recovery of a crashed predecessor's calls."""

from __future__ import annotations

from enum import Enum, StrEnum


class State(StrEnum):
    """Where the call's flow is (logged with every interruption)."""

    NEW = "new"
    DISCLOSING = "disclosing"
    CONNECTING = "connecting"
    BRIDGED = "bridged"
    ENDING = "ending"
    ENDED = "ended"


class Admission(Enum):
    """What the consent decision and the failure policy let the call do next."""

    RECORDED = "connect and record"
    UNRECORDED = "connect unrecorded"
    REFUSED = "end here"  # declined with on_decline = hangup, or strict without a recording
