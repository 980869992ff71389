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
   a bridged call is recorded again within a moment), and hands the records
   of dialplan calls recorded over FastAGI to that front end
   (:class:`~callrec.takeover.TakesOver`, ``agi/takeover.py``), which takes
   them over the same way;
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
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ari_app.context import AGENT_APP_ARG, TAP_CHANNEL_PREFIXES, CallContext
from ari_app.resumed import ResumedSession
from callrec.ari.events import Channel
from callrec.audit import audit_record
from callrec.errors import AriError, AriNotFound, AriUnavailable
from callrec.live import Frontend, LiveCall, LiveRecordError
from callrec.logutil import safe
from callrec.takeover import Survey, TakesOver, continues_of, ids_of, lose, remove

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

    def __init__(self, ctx: CallContext, services: Sequence[object] = ()) -> None:
        self.ctx = ctx
        # The other front ends: each takes over the records of its own calls.
        self.takers = [s for s in services if isinstance(s, TakesOver)]

    async def survey(self) -> Survey | None:
        """A snapshot of Asterisk; None when ARI cannot be read now (try again later)."""
        client = self.ctx.client
        try:
            try:
                in_app = set((await client.get_application()).channel_ids)
            except AriNotFound:
                in_app = set()  # no predecessor ever registered the app
            channels = await client.list_channels()
            bridges = await client.list_bridges()
        except (AriError, AriUnavailable) as exc:
            logger.warning("cannot survey Asterisk for earlier calls: %s", safe(str(exc), 200))
            return None
        return Survey(
            channels={c.id: c for c in channels},
            bridges={b.id: b for b in bridges},
            in_app=in_app,
            boot=self.ctx.pbx_boot,
        )

    async def plan(self, survey: Survey, skip: Collection[str]) -> Plan:
        """Sort the live records against the snapshot (``skip``: calls of this process)
        and hand the FastAGI front end its own (which starts taking them over)."""
        plan = Plan(survey)
        store = self.ctx.live
        if store is None:
            return plan
        records, plan.unreadable = await asyncio.to_thread(store.load)
        dialplan: list[LiveCall] = []
        for record in records:
            if record.call in skip:
                continue
            still_there = survey.still_there(record)
            if record.frontend is not Frontend.ARI and not self.takers and still_there:
                continue  # a dialplan call, and no FastAGI front end here to record it
            plan.claimed.update(ids_of(record))
            if record.frontend is not Frontend.ARI and self.takers:
                dialplan.append(record)
            elif still_there:
                continues = continues_of(record, self.ctx.spool)
                plan.resumed.append(ResumedSession(self.ctx, record, survey, continues))
            else:
                plan.lost.append(record)
        for taker in self.takers:
            taker.take_over(survey, dialplan)
        plan.claimed.update(i for tap in list(self.ctx.taps) for i in tap.ids.ids())
        return plan

    # --- the background part ---------------------------------------------------

    async def clean_up(self, plan: Plan) -> None:
        """Audit and remove what no call needs any more; never raises."""
        try:
            for problem in plan.unreadable:
                self._unreadable(problem)
            for record in plan.lost:
                await lose(self.ctx, record, plan.survey)
            await self._sweep(plan)
        except Exception:
            logger.exception("clean-up after a previous recorder failed")

    def _unreadable(self, problem: LiveRecordError) -> None:
        logger.error("%s: removed", safe(str(problem), 300))
        self._audit("live-record-unreadable", path=problem.path, reason=problem.message)
        if self.ctx.live is not None:
            with contextlib.suppress(OSError):
                self.ctx.live.discard(Path(problem.path))

    async def _sweep(self, plan: Plan) -> None:
        """Channels in the app no record names, then the bridges left empty."""
        survey, removed, gone = plan.survey, [], set[str]()
        for channel_id in sorted(survey.in_app - plan.claimed):
            channel = survey.channels.get(channel_id)
            if channel is None:
                continue
            if _is_tap(channel):
                removed += await remove(self.ctx.client, [channel_id], survey)
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
                removed += await remove(self.ctx.client, [bridge.id], survey)
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

    def _audit(self, event: str, **fields: Any) -> None:
        self.ctx.append_audit(audit_record(event, **fields), {})


def _is_tap(channel: Channel) -> bool:
    return channel.name.startswith(TAP_CHANNEL_PREFIXES)
