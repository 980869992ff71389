"""How a call ends: why (:class:`End`), and how the end reaches a waiting flow.

Every way a call can end while its flow waits (caller or destination hangs
up, the app shuts down, the PBX restarted) sets the call's one
:class:`CallEnding`; the flow awaits everything through
:meth:`CallEnding.until`, which turns that end into one
:class:`~callrec.errors.CallHangup`, handled in one place (asyncari
``state.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from callrec.ari.causes import SoftHangup
from callrec.ari.events import ChannelHangupRequest, Event
from callrec.audit import audit_record
from callrec.errors import CallHangup, CallrecError
from callrec.evidence import Evidence
from callrec.tap import TapResult

T = TypeVar("T")


class End(StrEnum):
    """Why a call ended; goes into the audit line and the recording's summary."""

    CALLER_HANGUP = "caller-hangup"
    DESTINATION_HANGUP = "destination-hangup"
    DECLINED = "declined"
    DESTINATION_UNAVAILABLE = "destination-unavailable"
    RECORDING_UNAVAILABLE = "recording-unavailable"
    SHUTDOWN = "shutdown"
    PBX_RESTART = "ended-by-pbx-restart"
    CHANNEL_GONE = "channel-gone"
    # A restarted recorder found the call before it was connected and gave
    # it back to the dialplan (ari_app/recovery.py).
    HANDED_BACK = "handed-back"
    ERROR = "error"


def hangup_reason(event: Event, default: End) -> End:
    """A soft hang-up with the shutdown flag is Asterisk restarting (trace 07)."""
    if not isinstance(event, ChannelHangupRequest):
        return default
    if event.soft and event.cause == SoftHangup.SHUTDOWN:
        return End.PBX_RESTART
    return default


class CallEnding:
    """The end of one call: its reason (the first one wins) and its Q.850 cause."""

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id
        self.reason: End | None = None
        self.cause: int | None = None
        self._ended = asyncio.Event()

    def end(self, reason: End, cause: int | None = None) -> None:
        """End the call from outside the flow: whatever the flow awaits is interrupted."""
        self.conclude(reason)
        if self.cause is None:
            self.cause = cause
        self._ended.set()

    def conclude(self, reason: End) -> None:
        """Name the end without interrupting the flow (it still has to announce why)."""
        if self.reason is None:
            self.reason = reason

    async def wait(self) -> None:
        await self._ended.wait()

    async def until(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` unless the call ends first; then raise CallHangup."""
        task = asyncio.ensure_future(awaitable)
        if self._ended.is_set():
            await self._cancel(task)
            raise CallHangup(self.channel_id, self.cause)
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait({task, ended}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
        if task.done():
            return task.result()
        await self._cancel(task)
        raise CallHangup(self.channel_id, self.cause)

    @staticmethod
    async def _cancel(task: asyncio.Future[T]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, CallrecError):
            await task


@dataclass
class CallOutcome:
    """What a finished call did, as its one audit line says it (``callrec.audit``)."""

    channel: str
    evidence: Evidence
    started: float
    end: End
    bridged_at: float | None = None
    failure: str | None = None
    tap_result: TapResult | None = None
    destination: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def audit_record(self, now: float) -> dict[str, Any]:
        """The ``call`` line (``failure`` when recording could not run or was not sealed)."""
        fields: dict[str, Any] = {}
        durations: dict[str, float] = {"call": now - self.started}
        if self.bridged_at is not None:
            durations["bridged"] = now - self.bridged_at
        event, reason = ("call", None) if self.failure is None else ("failure", self.failure)
        if self.tap_result is not None:
            fields = self.tap_result.audit_fields(self.evidence)
            durations.update(fields.pop("durations"))
            event, reason = self.tap_result.audit_outcome(event, reason)
        return audit_record(
            event,
            evidence=self.evidence,
            durations=durations,
            reason=reason,
            channel=self.channel,
            end=str(self.end),
            destination=self.destination,
            **fields,
            **self.extra,
        )
