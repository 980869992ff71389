"""An events websocket that cannot connect gets louder the longer it fails.

The client runs against a real aiohttp server (and a port nobody listens
on); time is a clock that moves on by itself at each backoff sleep, so five
minutes of retrying cost no real time and the levels, not the times, are
what the tests assert.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiohttp import web

from callrec.ari import events as ev
from callrec.ari.client import AriClient
from callrec.ari.outage import Outage, duration
from callrec.clock import ManualClock
from tests.callrec.ari.test_client_events import free_port

PASSWORD = "callrec-secret"
CLIENT_LOGGERS = ("callrec.ari.outage", "callrec.ari.client")


class SteppingClock(ManualClock):
    """Each backoff sleep moves time on at once, as if the wait had passed;
    ``passed`` is set once ``until`` seconds have."""

    def __init__(self, until: float) -> None:
        super().__init__()
        self.until = until
        self.passed = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        if self.monotonic() >= self.until:
            self.passed.set()
        await asyncio.sleep(0)


@dataclass
class Pbx:
    """Answers the websocket handshake with ``status`` (101: the websocket)."""

    status: int = 503

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.status != 101:
            return web.json_response({"message": "Asterisk not booted"}, status=self.status)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await asyncio.sleep(30)
        return ws


@pytest.fixture
async def pbx() -> AsyncIterator[tuple[Pbx, int]]:
    server = Pbx()
    app = web.Application()
    app.router.add_get("/ari/events", server.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield server, port
    finally:
        await runner.cleanup()


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name in CLIENT_LOGGERS]


async def _first_item(client: AriClient) -> ev.StreamItem:
    stream = client.events()
    try:
        return await anext(stream)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


async def test_a_pbx_down_for_minutes_is_info_then_warning_then_error(
    pbx: tuple[Pbx, int], caplog: pytest.LogCaptureFixture
) -> None:
    server, port = pbx
    caplog.set_level(logging.DEBUG, logger="callrec.ari")
    clock = SteppingClock(until=420)  # seven minutes of 503s
    client = AriClient(f"http://127.0.0.1:{port}", "callrec", PASSWORD, "callrec", clock=clock)
    async with client:
        first = asyncio.create_task(_first_item(client))
        await asyncio.wait_for(clock.passed.wait(), 30)
        server.status = 101
        item = await asyncio.wait_for(first, 10)
    assert isinstance(item, ev.Connected)
    failures = [(level, m) for level, m in _lines(caplog) if "retrying" in m]
    assert len(failures) == item.attempt - 1 > 200
    assert all("503 (Asterisk still booting)" in m for _, m in failures)
    loud = [level for level, _ in failures if level > logging.DEBUG]
    # INFO while it may be a restart, then louder, never quieter again.
    assert loud[0] == logging.INFO
    assert loud == sorted(loud)
    assert {logging.WARNING, logging.ERROR} <= set(loud)
    # Once loud, a line a minute, not one per 2 s retry: the rest are DEBUG.
    assert loud.count(logging.WARNING) <= 5
    assert 1 <= loud.count(logging.ERROR) <= 3
    warning = next(m for level, m in failures if level == logging.WARNING)
    assert "Stasis() fails" in warning
    level, back = _lines(caplog)[-1]
    assert level == logging.WARNING
    assert back.startswith(f"ARI events http://127.0.0.1:{port}: connected again after 7 min")
    assert f"({item.attempt - 1} failed attempt(s))" in back
    assert PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("status", "reason"),
    [(404, "404 (Asterisk still loading res_ari, or ari.url is wrong)"), (None, "refused")],
)
async def test_each_retry_names_its_reason(
    pbx: tuple[Pbx, int], caplog: pytest.LogCaptureFixture, status: int | None, reason: str
) -> None:
    server, port = pbx
    caplog.set_level(logging.INFO, logger="callrec.ari")
    if status is None:
        port = free_port()  # nobody listens: connection refused
    else:
        server.status = status
    clock = SteppingClock(until=40)
    client = AriClient(f"http://127.0.0.1:{port}", "callrec", PASSWORD, "callrec", clock=clock)
    async with client:
        first = asyncio.create_task(_first_item(client))
        await asyncio.wait_for(clock.passed.wait(), 30)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
    lines = _lines(caplog)
    assert lines[0][0] == logging.INFO
    assert reason in lines[0][1]
    assert "(attempt 1, failing for 0.0 s)" in lines[0][1]
    assert any(level == logging.WARNING and reason in m for level, m in lines)


def test_a_short_drop_is_an_info_line_when_it_reconnects() -> None:
    clock = ManualClock()
    outage = Outage(clock)
    outage.attempt()
    assert outage.connected() is None  # the first connection: no outage to tell of
    clock.advance(100)
    outage.dropped()
    clock.advance(0.4)
    outage.attempt()
    recovered = outage.connected()
    assert recovered is not None
    assert (recovered.level, recovered.failures) == (logging.INFO, 0)
    assert duration(recovered.down_for) == "0.4 s"


def test_a_new_reason_is_news_even_when_loud() -> None:
    clock = ManualClock()
    outage = Outage(clock)
    outage.attempt()
    assert outage.failed("connection refused").level == logging.INFO
    clock.advance(31)
    assert outage.failed("connection refused").level == logging.WARNING
    clock.advance(2)
    assert outage.failed("connection refused").level == logging.DEBUG
    assert outage.failed("503 (Asterisk still booting)").level == logging.WARNING
    clock.advance(60)
    assert outage.failed("503 (Asterisk still booting)").level == logging.WARNING


def test_durations_read_as_an_admin_would_say_them() -> None:
    assert duration(4.25) == "4.2 s"
    assert duration(192) == "3 min 12 s"
    assert duration(7500) == "2 h 5 min"
