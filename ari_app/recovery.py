"""What a restarted recorder does with what a crashed predecessor left in Asterisk.

After ``kill -9`` of ``callrec serve`` Asterisk keeps its calls: caller and
destination stay bridged, the recording tap's ExternalMedia channel goes on
sending RTP to a port nobody reads, and the Stasis app stays listed. Asterisk
replays nothing to the next websocket of the app, so on its first connection
the restarted recorder:

1. reads the live records its predecessor kept in the spool
   (:mod:`callrec.live`) and takes one snapshot of Asterisk: its channels,
   its bridges and the channels in the app (:meth:`CrashRecovery.survey`);
2. takes over each call whose caller is still there
   (:class:`~ari_app.resumed.ResumedSession`, started by the app at once, so
   a bridged call is recorded again within a moment);
3. in the background (:meth:`CrashRecovery.clean_up`): audits each call whose
   caller has gone (``call-lost-by-crash``) and removes what it left (the
   destination, the tap, the bridges); audits each channel in the app that
   no record names (``channel-without-record``: a tap channel is removed, a
   caller talking to somebody is left connected, anything else goes back to
   the dialplan or is hung up); removes the empty bridges nobody names
   (``leftovers-removed``); and audits records it cannot read.

Only what existed before this process connected is touched: the snapshot
is taken before any new call is processed, and this process's own taps (the
AGI front end's too) are excluded by their ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ari_app.context import AGENT_APP_ARG, TAP_CHANNEL_PREFIXES, CallContext
from ari_app.resumed import Recovery, ResumedSession, Survey
from callrec.ari.events import Bridge, Channel
from callrec.audit import audit_record
from callrec.errors import AriError, AriNotFound, AriUnavailable, CallrecError
from callrec.live import Continues, LiveCall, LiveRecordError
from callrec.logutil import safe

logger = logging.getLogger(__name__)

# Bridges callrec names itself (the call's and the tap's, ``callrec.tap.new_id``):
# no other bridge is ever removed.
OWN_BRIDGE_PREFIX = "callrec-"


@dataclass
class Plan:
    """The outcome of one survey: calls to take over, calls lost, what to clean."""

    survey: Survey
    resumed: list[ResumedSession] = field(default_factory=list)
    lost: list[LiveCall] = field(default_factory=list)
    unreadable: list[LiveRecordError] = field(default_factory=list)
    claimed: set[str] = field(default_factory=set)


class CrashRecovery:
    """One restarted recorder's look at its predecessor's calls."""

    def __init__(self, ctx: CallContext) -> None:
        self.ctx = ctx

    async def survey(self) -> Survey | None:
        """A snapshot of Asterisk; None when ARI cannot be read now (try again later)."""
        client = self.ctx.client
        try:
            try:
                in_app = set((await client.get_application()).channel_ids)
            except AriNotFound:
                in_app = set()  # no predecessor ever registered the app
            channels = await client.list_channels()
            bridges = await client.request("GET", "/bridges")
        except (AriError, AriUnavailable) as exc:
            logger.warning("cannot survey Asterisk for earlier calls: %s", safe(str(exc), 200))
            return None
        return Survey(
            channels={c.id: c for c in channels},
            bridges={b.id: b for b in (Bridge.from_json(d) for d in bridges or ())},
            in_app=in_app,
            boot=self.ctx.pbx_boot,
        )

    async def plan(self, survey: Survey, skip: Collection[str]) -> Plan:
        """Sort the live records against the snapshot (``skip``: calls of this process)."""
        plan = Plan(survey)
        store = self.ctx.live
        if store is None:
            return plan
        records, plan.unreadable = await asyncio.to_thread(store.load)
        for record in records:
            if record.call in skip:
                continue
            plan.claimed.update(_ids_of(record))
            if self._still_there(record, survey):
                continues = self._continues(record)
                plan.resumed.append(ResumedSession(self.ctx, record, survey, continues))
            else:
                plan.lost.append(record)
        plan.claimed.update(i for tap in list(self.ctx.taps) for i in tap.ids.ids())
        return plan

    @staticmethod
    def _still_there(record: LiveCall, survey: Survey) -> bool:
        rebooted = record.pbx_boot and survey.boot and record.pbx_boot != survey.boot
        return not rebooted and record.call in survey.channels

    def _continues(self, record: LiveCall) -> Continues | None:
        """What the call's next recording continues: its last one, wherever it is now."""
        part = record.recording
        if part is None:
            return record.continues  # none, or sealed when the recorder was stopped
        try:
            path = self.ctx.spool.find(part.id)
        except CallrecError:
            path = None
        return Continues(record.call, part.id, None if path is None else str(path), part.part)

    # --- the background part ---------------------------------------------------

    async def clean_up(self, plan: Plan) -> None:
        """Audit and remove what no call needs any more; never raises."""
        try:
            for problem in plan.unreadable:
                self._unreadable(problem)
            for record in plan.lost:
                await self._lose(record, plan.survey)
            await self._sweep(plan)
        except Exception:
            logger.exception("clean-up after a previous recorder failed")

    def _unreadable(self, problem: LiveRecordError) -> None:
        logger.error("%s: removed", safe(str(problem), 300))
        self._audit("live-record-unreadable", path=problem.path, reason=problem.message)
        if self.ctx.live is not None:
            with contextlib.suppress(OSError):
                self.ctx.live.discard(Path(problem.path))

    async def _lose(self, record: LiveCall, survey: Survey) -> None:
        """The caller hung up while no recorder ran (or Asterisk restarted)."""
        gone = survey.boot is not None and record.pbx_boot not in (None, survey.boot)
        removed = [] if gone else await self._remove(_ids_of(record) - {record.call}, survey)
        continues = self._continues(record)
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
        )
        # What the record knows of the evidence (the rest is in the recording);
        # the pseudonym where erasure looks for it (callrec.audit_chain).
        line["evidence"] = {
            "uniqueid": record.call,
            "caller": record.pseudonym,
            "dialled": record.dialled,
            "decision": line["decision"],
        }
        self.ctx.append_audit(line, {})
        if self.ctx.live is not None:
            with contextlib.suppress(LiveRecordError):
                await asyncio.to_thread(self.ctx.live.remove, record.call)

    async def _sweep(self, plan: Plan) -> None:
        """Channels in the app no record names, then the bridges left empty."""
        survey, removed, gone = plan.survey, [], set[str]()
        for channel_id in sorted(survey.in_app - plan.claimed):
            channel = survey.channels.get(channel_id)
            if channel is None:
                continue
            if _is_tap(channel):
                removed += await self._remove([channel_id], survey)
                gone.add(channel_id)
                continue
            action = await self._unknown(channel, survey)
            if action != "left-connected":
                gone.add(channel_id)
            logger.warning("[%s] in Stasis without a live record: %s", safe(channel_id), action)
            self._audit("channel-without-record", channel=channel_id, action=action)
        for bridge in survey.bridges.values():
            if bridge.id in plan.claimed or not bridge.id.startswith(OWN_BRIDGE_PREFIX):
                continue
            if all(c in gone or c not in survey.channels for c in bridge.channels):
                removed += await self._remove([bridge.id], survey)
        if removed:
            logger.warning("removed %d leftover(s) of a previous recorder", len(removed))
            self._audit("leftovers-removed", removed=removed)

    async def _unknown(self, channel: Channel, survey: Survey) -> str:
        """A channel in the app that no record names (its record was lost)."""
        bridge = survey.bridge_of(channel.id)
        peers = [] if bridge is None else [c for c in bridge.channels if c != channel.id]
        if any(p in survey.channels and not _is_tap(survey.channels[p]) for p in peers):
            return "left-connected"  # talking to somebody: not ours to cut
        client = self.ctx.client
        with contextlib.suppress(AriError, AriUnavailable):
            if AGENT_APP_ARG in channel.dialplan.app_data.split(","):
                await client.hangup(channel.id)  # a destination leg nobody serves
                return "hung-up"
            await client.continue_in_dialplan(channel.id)
            return "handed-back"
        return "failed"

    async def _remove(self, ids: Iterable[str], survey: Survey) -> list[str]:
        """Hang up the channels and destroy the bridges among ``ids`` that still exist."""
        client, removed = self.ctx.client, []
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

    def _audit(self, event: str, **fields: Any) -> None:
        self.ctx.append_audit(audit_record(event, **fields), {})


def _ids_of(record: LiveCall) -> set[str]:
    """Every PBX object a record names."""
    tap = record.tap.ids() if record.tap is not None else ()
    ids = {record.call, record.destination, record.bridge, *tap}
    return {i for i in ids if i}


def _is_tap(channel: Channel) -> bool:
    return channel.name.startswith(TAP_CHANNEL_PREFIXES)
