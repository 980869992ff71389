"""The event router delivers each channel's events to whoever waits for them.

Events come from the real traces in tests/fixtures, so the keys the router
reads (channel, peer, playback target) are the ones Asterisk really sends.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from callrec.ari.events import Event, parse_event
from callrec.ari.router import EventRouter, channel_ids
from callrec.clock import ManualClock

TRACES = Path(__file__).resolve().parents[2] / "fixtures" / "ari-traces"


def _events(name: str) -> list[Event]:
    lines = (TRACES / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
    return [parse_event(d["event"]) for d in map(json.loads, lines) if d["kind"] == "event"]


def _ev(data: dict[str, Any]) -> Event:
    return parse_event({"timestamp": "", "application": "callrec", **data})


def test_every_trace_event_of_a_channel_is_routed_to_it() -> None:
    events = _events("01-consent-implied")
    caller = channel_ids(events[0])[0]
    router = EventRouter()
    got: list[str] = []
    router.subscribe(caller, lambda e: got.append(e.type))
    for event in events:
        router.dispatch(event)
    assert got[:4] == ["StasisStart", "ChannelStateChange", "PlaybackStarted", "PlaybackFinished"]
    assert got[-1] == "StasisEnd"
    assert "ChannelDestroyed" not in got


def test_dial_events_are_routed_to_the_dialled_peer() -> None:
    events = _events("04b-agent-unavailable-busy")
    dial = next(e for e in events if e.type == "Dial")
    assert channel_ids(dial) == [dial.raw["peer"]["id"]]


async def test_wait_for_returns_an_event_that_arrived_before_the_rest_reply() -> None:
    # Trace 05: externalMedia's StasisStart can come before its 200.
    events = _events("05-snoop-dialplan-call")
    router = EventRouter()
    for event in events:
        router.dispatch(event)
    ext = next(e for e in events if e.type == "StasisStart" and e.raw["args"] == [])
    got = await router.wait_for(channel_ids(ext)[0], "StasisStart", timeout=0.1)
    assert got is ext


async def test_wait_for_gets_a_later_event_and_times_out_without_one() -> None:
    router = EventRouter()
    waiting = asyncio.ensure_future(router.wait_for("1.2", ["StasisStart"], timeout=5))
    await asyncio.sleep(0)
    router.dispatch(_ev({"type": "StasisStart", "channel": {"id": "1.2"}, "args": []}))
    assert (await waiting).type == "StasisStart"
    with pytest.raises(TimeoutError):
        await router.wait_for("1.3", "StasisStart", timeout=0.01)


def test_a_stasis_start_nobody_expects_is_a_new_call() -> None:
    router = EventRouter()
    new: list[str] = []
    router.on_unclaimed = lambda e: new.append(channel_ids(e)[0])
    router.expect("9.1")
    router.dispatch(_ev({"type": "StasisStart", "channel": {"id": "9.1"}, "args": []}))
    router.dispatch(_ev({"type": "StasisStart", "channel": {"id": "9.2"}, "args": ["100"]}))
    assert new == ["9.2"]


def test_a_failing_subscriber_does_not_starve_the_others() -> None:
    router = EventRouter()
    got: list[str] = []

    def broken(event: Event) -> None:
        raise RuntimeError("boom")

    router.subscribe("1.1", broken)
    router.subscribe("1.1", lambda e: got.append(e.type))
    router.dispatch(_ev({"type": "StasisEnd", "channel": {"id": "1.1"}}))
    assert got == ["StasisEnd"]


def test_history_of_channels_nobody_cares_about_expires() -> None:
    clock = ManualClock()
    router = EventRouter(clock=clock, history_seconds=5)
    router.dispatch(_ev({"type": "ChannelVarset", "channel": {"id": "1.1"}}))
    clock.advance(10)
    router.dispatch(_ev({"type": "ChannelVarset", "channel": {"id": "1.2"}}))
    assert router.seen("1.1", ["ChannelVarset"]) is None
    assert router.seen("1.2", ["ChannelVarset"]) is not None
