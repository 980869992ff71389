"""The destination leg of a call: originated, ringing, answered, or why not.

Asterisk tells a leg's fate only through the leg's own events (traces 01,
04a, 04b): ``StasisStart`` means it answered; a ``ChannelDestroyed``
without one means it never did, and its Q.850 cause says why: busy (17),
no answer (19, the originate timeout) or any other failure. The caller's
channel hears none of this, so the session asks the leg.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum

from ari_app.context import AGENT_APP_ARG
from callrec.ari.causes import HangupCause
from callrec.ari.client import AriClient
from callrec.ari.events import (
    ChannelDestroyed,
    ChannelHangupRequest,
    Event,
    StasisEnd,
    StasisStart,
)
from callrec.config import Destination
from callrec.errors import AriError


class LegState(StrEnum):
    """Where the destination's channel is."""

    RINGING = "ringing"  # originated, not answered yet
    UP = "up"  # answered and in Stasis
    GONE = "gone"  # hung up, or never answered
    # We hung it up ourselves (strict failure policy): its hang-up events
    # must not read as the destination ending the call.
    DROPPED = "dropped"


class DestinationOutcome(StrEnum):
    """How calling the destination ended."""

    ANSWERED = "answered"
    BUSY = "busy"  # Q.850 17, SIP 486
    NO_ANSWER = "no-answer"  # Q.850 19 (or 18): rang until the originate timeout
    FAILED = "failed"  # refused by Asterisk, any other cause, or vanished
    UNROUTED = "unrouted"  # no destination configured for the dialled number


_OUTCOME_OF_CAUSE: dict[int, DestinationOutcome] = {
    HangupCause.USER_BUSY: DestinationOutcome.BUSY,
    HangupCause.NO_USER_RESPONSE: DestinationOutcome.NO_ANSWER,
    HangupCause.NO_ANSWER: DestinationOutcome.NO_ANSWER,
}


@dataclass(frozen=True, slots=True)
class DestinationResult:
    """An outcome and what the audit line's ``destination`` says about it.

    ``detail`` is Asterisk's own words where there are any (``"User busy"``),
    so an auditor reads what the PBX reported.
    """

    outcome: DestinationOutcome
    detail: str

    @property
    def answered(self) -> bool:
        return self.outcome is DestinationOutcome.ANSWERED

    @classmethod
    def of_destroyed(cls, event: ChannelDestroyed) -> DestinationResult:
        """A leg destroyed before it answered (traces 04a, 04b)."""
        outcome = _OUTCOME_OF_CAUSE.get(event.cause, DestinationOutcome.FAILED)
        return cls(outcome, event.cause_txt or f"cause {event.cause}")


ANSWERED = DestinationResult(DestinationOutcome.ANSWERED, "answered")
UNROUTED = DestinationResult(DestinationOutcome.UNROUTED, "no destination")
VANISHED = DestinationResult(DestinationOutcome.FAILED, "gone while the events websocket was down")


class DestinationLeg:
    """One originated destination channel, followed through its events."""

    def __init__(self, channel_id: str) -> None:
        self.id = channel_id
        self.state = LegState.RINGING
        self._result: asyncio.Future[DestinationResult] = (
            asyncio.get_running_loop().create_future()
        )

    @property
    def alive(self) -> bool:
        """Whether hanging the call up still has to hang this leg up."""
        return self.state in (LegState.RINGING, LegState.UP)

    async def dial(
        self, client: AriClient, dest: Destination, *, app: str, originator: str
    ) -> DestinationResult:
        """Originate the leg and wait until it answers or fails."""
        try:
            await client.originate(
                dest.endpoint,
                app=app,
                app_args=AGENT_APP_ARG,
                timeout=max(1, round(dest.timeout)),
                originator=originator,
                channel_id=self.id,
            )
        except AriError as exc:
            # Asterisk refused (500 "Allocation failed"): no channel exists.
            self.state = LegState.GONE
            return DestinationResult(DestinationOutcome.FAILED, f"originate failed: {exc.message}")
        return await self._result

    def on_event(self, event: Event) -> bool:
        """Follow one of the leg's events; True when an answered destination hung up."""
        if isinstance(event, StasisStart):
            self.state = LegState.UP
            self._settle(ANSWERED)
        elif isinstance(event, ChannelDestroyed) and not self._result.done():
            self.state = LegState.GONE
            self._settle(DestinationResult.of_destroyed(event))
        elif isinstance(event, ChannelHangupRequest | StasisEnd | ChannelDestroyed):
            hung_up = self.state is LegState.UP
            if not isinstance(event, ChannelHangupRequest):
                self.state = LegState.GONE
            return hung_up
        return False

    def seen_up(self) -> None:
        """After a reconnect the leg's channel is Up: it answered meanwhile."""
        if not self._result.done():
            self.state = LegState.UP
            self._settle(ANSWERED)

    def vanished(self) -> bool:
        """The channel went while the app was not listening; True when it had answered."""
        was_up = self.state is LegState.UP
        self.state = LegState.GONE
        self._settle(VANISHED)
        return was_up

    def drop(self) -> None:
        """We are about to hang the leg up ourselves."""
        self.state = LegState.DROPPED

    def _settle(self, result: DestinationResult) -> None:
        if not self._result.done():
            self._result.set_result(result)
