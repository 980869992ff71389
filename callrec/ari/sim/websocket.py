"""The simulated ARI events websocket: who is connected, and getting events to them.

Each connection is a :class:`WsSink` the engine puts events into without
blocking; a writer task drains it. :meth:`EventSockets.flush` lets a REST
handler wait until its events are on the wire, so they arrive before its
reply, as the traces show.
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from callrec.ari.sim.core import SimCore
from callrec.ari.sim.model import Json
from callrec.ari.sim.wire import param

logger = logging.getLogger(__name__)

MISSING_APP_HTML = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\r\n<html><head>\r\n'
    "<title>400 Bad Request</title>\r\n</head><body>\r\n<h1>Bad Request</h1>\r\n"
    "<p>HTTP request is missing param: [app]</p>\r\n<hr />\r\n"
    "<address>Asterisk-callrec-lab</address>\r\n</body></html>\r\n"
)


class WsSink:
    """One events websocket: a queue drained by a writer task, so emitters never block."""

    def __init__(self, ws: web.WebSocketResponse, transport: asyncio.Transport | None) -> None:
        self.ws = ws
        self.transport = transport
        self.queue: asyncio.Queue[Json] = asyncio.Queue()

    def put(self, event: Json) -> None:
        self.queue.put_nowait(event)

    async def run(self) -> None:
        while True:
            event = await self.queue.get()
            try:
                if not self.ws.closed:
                    await self.ws.send_str(json.dumps(event, ensure_ascii=False))
            except (ConnectionError, RuntimeError) as exc:
                logger.debug("event not delivered: %s", exc)
            finally:
                self.queue.task_done()

    def abort(self) -> None:
        """Drop the connection without a close frame (the client sees 1006)."""
        if self.transport is not None:
            self.transport.abort()


class EventSockets:
    """The events websockets connected to one simulator, subscribed in its core."""

    def __init__(self, core: SimCore) -> None:
        self.core = core
        self.sinks: set[WsSink] = set()

    def attach(self, sink: WsSink, apps: list[str]) -> None:
        for app in apps:
            self.core.sinks.setdefault(app, set()).add(sink)
            self.core.app_opened(app)
        self.sinks.add(sink)

    def detach(self, sink: WsSink, apps: list[str]) -> None:
        for app in apps:
            self.core.sinks.get(app, set()).discard(sink)
            self.core.app_closed(app)
        self.sinks.discard(sink)

    async def flush(self, limit: float = 0.5) -> None:
        """Wait until queued events are on the websockets (events before REST replies)."""
        joins = [s.queue.join() for s in list(self.sinks)]
        if joins:
            try:
                await asyncio.wait_for(asyncio.gather(*joins), limit)
            except TimeoutError:
                logger.debug("event flush timed out (a slow websocket reader)")

    def drop(self) -> None:
        """Every events websocket drops without a close frame; no event is queued after."""
        for sink in list(self.sinks):
            sink.abort()
        self.sinks.clear()
        self.core.sinks.clear()


SOCKETS_KEY: web.AppKey[EventSockets] = web.AppKey("ari_event_sockets", EventSockets)


async def events_ws(request: web.Request) -> web.StreamResponse:
    """``GET /ari/events?app=...``: subscribe until the client goes away."""
    sockets = request.app[SOCKETS_KEY]
    apps = [a for a in param(request, "app").split(",") if a]
    if not apps:
        return web.Response(
            status=400, body=MISSING_APP_HTML.encode(), headers={"Content-Type": "text/html"}
        )
    ws = web.WebSocketResponse(autoping=True)
    sink = WsSink(ws, request.transport)
    sockets.attach(sink, apps)
    writer = asyncio.get_running_loop().create_task(sink.run())
    try:
        await ws.prepare(request)
        async for _msg in ws:
            pass  # clients have nothing to say on this socket
    finally:
        sockets.detach(sink, apps)
        writer.cancel()
    return ws
