"""What both front ends do with the calls a crashed (or stopped) predecessor left.

After ``kill -9`` of ``callrec serve`` Asterisk keeps its calls and the
recording taps: a snoop still in the tap's bridge, an ExternalMedia channel
sending RTP to a port nobody reads. The restarted recorder reads the live
records (:mod:`callrec.live`) and takes one snapshot of Asterisk (a
:class:`Survey`) before it handles any new call; then each front end takes
over its own calls: the Stasis app (``ari_app/recovery.py``) its sessions,
the FastAGI front end (``agi/takeover.py``) its dialplan recordings. This is
what they share: the snapshot, whether a call is still there, where the
recording it continues is now, removing what a call left, and the
``call-lost-by-crash`` line of a call whose caller went while no recorder ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from callrec.ari.client import AriClient
from callrec.ari.events import Bridge, Channel
from callrec.audit import audit_record
from callrec.errors import AriError, AriNotFound, AriUnavailable, CallrecError
from callrec.live import Continues, LiveCall, LiveRecordError, LiveStore
from callrec.logutil import safe
from callrec.spool import Spool

logger = logging.getLogger(__name__)


class Recovery(StrEnum):
    """What a restarted recorder did with a call it found (audit ``recovery``)."""

    RECORDING_CONTINUED = "recording-continued"
    CONTINUED_UNRECORDED = "continued-unrecorded"
    HANDED_BACK = "handed-back"
    ENDED = "ended"
    LOST = "lost"


@dataclass
class Survey:
    """What Asterisk held when the restarted recorder looked (one snapshot)."""

    channels: dict[str, Channel] = field(default_factory=dict)
    bridges: dict[str, Bridge] = field(default_factory=dict)
    in_app: set[str] = field(default_factory=set)
    boot: str | None = None

    def bridge_of(self, channel_id: str) -> Bridge | None:
        return next((b for b in self.bridges.values() if channel_id in b.channels), None)

    def rebooted_since(self, record: LiveCall) -> bool:
        """Asterisk restarted since the record was written: every call in it is gone."""
        return bool(record.pbx_boot and self.boot and record.pbx_boot != self.boot)

    def still_there(self, record: LiveCall) -> bool:
        """Whether the record's caller is still a channel of this Asterisk boot."""
        return not self.rebooted_since(record) and record.call in self.channels


@runtime_checkable
class TakesOver(Protocol):
    """A front end beside the Stasis app that takes over its own calls (FastAGI).

    ``take_over`` must return at once (it starts what it does as tasks): the
    Stasis app's own calls wait for it.
    """

    def take_over(self, survey: Survey, records: Sequence[LiveCall]) -> None: ...


class Services(Protocol):
    """What taking over needs from the running recorder (its CallContext fits)."""

    @property
    def client(self) -> AriClient: ...

    @property
    def spool(self) -> Spool: ...

    @property
    def live(self) -> LiveStore | None: ...

    def append_audit(self, record: dict[str, Any], personal: dict[str, str]) -> None: ...


def ids_of(record: LiveCall) -> set[str]:
    """Every PBX object a record names."""
    tap = record.tap.ids() if record.tap is not None else ()
    ids = {record.call, record.destination, record.bridge, *tap}
    return {i for i in ids if i}


def continues_of(record: LiveCall, spool: Spool) -> Continues | None:
    """What the call's next recording continues: its last one, wherever it is now."""
    part = record.recording
    if part is None:
        return record.continues  # none, or sealed when the recorder was stopped
    try:
        path = spool.find(part.id)
    except CallrecError:
        path = None
    return Continues(record.call, part.id, None if path is None else str(path), part.part)


async def remove(client: AriClient, ids: Iterable[str], survey: Survey) -> list[str]:
    """Hang up the channels and destroy the bridges among ``ids`` that still exist."""
    removed = []
    ordered = sorted(ids, key=lambda i: i in survey.bridges)  # channels before bridges
    for object_id in ordered:
        if object_id in survey.channels:
            step = client.hangup(object_id)
        elif object_id in survey.bridges:
            step = client.destroy_bridge(object_id)
        else:
            continue
        try:
            await step
        except AriNotFound:
            continue  # gone meanwhile (a snoop ends with its caller)
        except (AriError, AriUnavailable) as exc:
            logger.warning("leftover %s not removed: %s", safe(object_id), safe(str(exc), 200))
            continue
        removed.append(object_id)
    return removed


async def lose(services: Services, record: LiveCall, survey: Survey, **fields: Any) -> None:
    """The caller hung up while no recorder ran (or Asterisk restarted): remove
    what the call left, write its ``call-lost-by-crash`` line (``fields``: what
    the front end's lines carry besides), forget its record."""
    gone = survey.rebooted_since(record)
    removed = [] if gone else await remove(services.client, ids_of(record) - {record.call}, survey)
    continues = continues_of(record, services.spool)
    why = "Asterisk restarted" if gone else "the caller hung up"
    logger.warning("[%s] call lost while no recorder ran (%s)", safe(record.call), why)
    line = audit_record(
        "call-lost-by-crash",
        channel=record.call,
        decision=None if record.decision is None else str(record.decision),
        found=str(record.state),
        recovery=str(Recovery.LOST),
        reason=f"{why} while no recorder was running",
        recording_id=None if continues is None else continues.recording_id,
        path=None if continues is None else continues.path,
        removed=removed,
        **fields,
    )
    # What the record knows of the evidence (the rest is in the recording);
    # the pseudonym where erasure looks for it (callrec.audit_chain).
    line["evidence"] = {
        "uniqueid": record.call,
        "caller": record.pseudonym,
        "dialled": record.dialled,
        "decision": line["decision"],
        "frontend": str(record.frontend),
    }
    services.append_audit(line, {})
    if services.live is not None:
        with contextlib.suppress(LiveRecordError):
            await asyncio.to_thread(services.live.remove, record.call)
