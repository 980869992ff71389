"""Routes ARI events to the code that waits for them, per channel.

Asterisk sends one websocket for the whole application; every call session,
every recording tap and the application itself want only the events of their
own channels. The router keeps, per channel id, a list of subscribers and a
short history, because a REST reply and the events it causes arrive in either
order (trace 05: externalMedia's StasisStart may come before or after its 200;
trace 01: ChannelStateChange before the 204 of answer). ``wait_for`` therefore
looks at the recent history first and then waits.

Events that no subscriber takes and that start something (a StasisStart of a
channel nobody announced) go to ``on_unclaimed``: that is how the application
learns about new calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from callrec.ari.events import Event, target_channel_id
from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.logutil import safe

logger = logging.getLogger(__name__)

Handler = Callable[[Event], None]

# How long and how many events the router remembers per channel: enough to
# cover a REST reply that arrives after its events, small enough to bound
# memory when calls churn.
HISTORY_SECONDS = 30.0
HISTORY_EVENTS = 64


def channel_ids(event: Event) -> list[str]:
    """Every channel id an event concerns, in the order they matter."""
    raw = event.raw
    ids: list[str] = []
    for key in ("channel", "peer", "replace_channel"):
        obj = raw.get(key)
        if isinstance(obj, Mapping) and isinstance(obj.get("id"), str):
            ids.append(obj["id"])
    playback = raw.get("playback")
    if isinstance(playback, Mapping):
        target = target_channel_id(str(playback.get("target_uri", "")))
        if target is not None:
            ids.append(target)
    return ids


@dataclass
class _Waiter:
    types: frozenset[str]
    future: asyncio.Future[Event]
    predicate: Callable[[Event], bool] | None = None

    def wants(self, event: Event) -> bool:
        if event.type not in self.types:
            return False
        return self.predicate is None or self.predicate(event)


@dataclass
class _Channel:
    history: deque[tuple[float, Event]] = field(
        default_factory=lambda: deque(maxlen=HISTORY_EVENTS)
    )
    handlers: list[Handler] = field(default_factory=list)
    waiters: list[_Waiter] = field(default_factory=list)
    expected: bool = False


class EventRouter:
    """Per-channel event delivery with a short memory.

    ``dispatch`` is called for every event from the websocket (synchronously,
    in arrival order). Subscribers are plain callables run in that order;
    waiters are futures resolved by the first matching event.
    """

    def __init__(
        self, *, clock: Clock = SYSTEM_CLOCK, history_seconds: float = HISTORY_SECONDS
    ) -> None:
        self._clock = clock
        self._history_seconds = history_seconds
        self._channels: dict[str, _Channel] = {}
        self._next_expiry = 0.0
        self.on_unclaimed: Handler | None = None

    def dispatch(self, event: Event) -> None:
        """Deliver one event to everybody interested in its channels."""
        ids = channel_ids(event)
        claimed = False
        for channel_id in ids:
            claimed = self._deliver(channel_id, event) or claimed
        if not claimed and self.on_unclaimed is not None and ids:
            self.on_unclaimed(event)
        self._expire()

    def subscribe(self, channel_id: str, handler: Handler) -> None:
        """Call ``handler(event)`` for each later event of ``channel_id``."""
        self._channel(channel_id).handlers.append(handler)

    def unsubscribe(self, channel_id: str, handler: Handler) -> None:
        state = self._channels.get(channel_id)
        if state is not None and handler in state.handlers:
            state.handlers.remove(handler)

    def expect(self, channel_id: str) -> None:
        """Announce a channel this process creates, so its StasisStart is not a new call."""
        self._channel(channel_id).expected = True

    def seen(self, channel_id: str, types: Iterable[str]) -> Event | None:
        """The most recent remembered event of one of ``types``, or None."""
        wanted = set(types)
        state = self._channels.get(channel_id)
        if state is None:
            return None
        for _, event in reversed(state.history):
            if event.type in wanted:
                return event
        return None

    async def wait_for(
        self,
        channel_id: str,
        types: str | Iterable[str],
        timeout: float | None = None,  # noqa: ASYNC109 (the contract every caller uses)
        *,
        predicate: Callable[[Event], bool] | None = None,
    ) -> Event:
        """The first event of ``types`` for ``channel_id``, remembered or new.

        Raises ``TimeoutError`` when none arrives within ``timeout`` seconds.
        """
        wanted = frozenset([types] if isinstance(types, str) else types)
        state = self._channel(channel_id)
        for _, event in state.history:
            if event.type in wanted and (predicate is None or predicate(event)):
                return event
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(wanted, future, predicate)
        state.waiters.append(waiter)
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout)
        finally:
            if waiter in state.waiters:
                state.waiters.remove(waiter)

    def forget(self, channel_id: str) -> None:
        """Drop everything about a channel that is gone."""
        state = self._channels.pop(channel_id, None)
        if state is not None:
            for waiter in state.waiters:
                waiter.future.cancel()

    def reset(self) -> None:
        """Forget all history: after a PBX restart channel ids start again at ``.0``."""
        for state in self._channels.values():
            state.history.clear()

    def _channel(self, channel_id: str) -> _Channel:
        state = self._channels.get(channel_id)
        if state is None:
            state = self._channels[channel_id] = _Channel()
        return state

    def _deliver(self, channel_id: str, event: Event) -> bool:
        state = self._channel(channel_id)
        state.history.append((self._clock.monotonic(), event))
        claimed = state.expected or bool(state.handlers) or bool(state.waiters)
        for waiter in list(state.waiters):
            if waiter.wants(event) and not waiter.future.done():
                waiter.future.set_result(event)
                state.waiters.remove(waiter)
        for handler in list(state.handlers):
            try:
                handler(event)
            except Exception:
                # One broken subscriber must not starve the others of events.
                logger.exception("channel %s: event handler failed", safe(channel_id))
        return claimed

    def _expire(self) -> None:
        now = self._clock.monotonic()
        # Sweeping every channel on every event would be quadratic under load.
        if now < self._next_expiry:
            return
        self._next_expiry = now + 1.0
        horizon = now - self._history_seconds
        for channel_id in [
            cid
            for cid, st in self._channels.items()
            if not st.handlers
            and not st.waiters
            and not st.expected
            and (not st.history or st.history[-1][0] < horizon)
        ]:
            del self._channels[channel_id]
