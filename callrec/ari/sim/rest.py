"""HTTP face of the ARI simulator: REST handlers, auth, the events websocket.

Status codes and bodies follow trace 06 exactly (including the odd ones: 400
for an unknown channel in addChannel, 422 vs 409 for "not in Stasis", 500
``{"error": "Allocation failed"}``, 500 for play without media).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import uuid
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from callrec.ari.sim.dial import AllocationFailed
from callrec.ari.sim.engine import SimEngine
from callrec.ari.sim.media import AUDIOSOCKET_RATES
from callrec.ari.sim.model import (
    ASTERISK_ID,
    HANGUP_REASONS,
    Json,
    SimBridge,
    SimChannel,
    SimPlayback,
    asterisk_time,
)

if TYPE_CHECKING:
    from callrec.ari.sim import AriSimulator

logger = logging.getLogger(__name__)
T = TypeVar("T")

SIM_KEY: web.AppKey[AriSimulator] = web.AppKey("ari_simulator")

MISSING_APP_HTML = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\r\n<html><head>\r\n'
    "<title>400 Bad Request</title>\r\n</head><body>\r\n<h1>Bad Request</h1>\r\n"
    "<p>HTTP request is missing param: [app]</p>\r\n<hr />\r\n"
    "<address>Asterisk-callrec-lab</address>\r\n</body></html>\r\n"
)
NOT_IN_STASIS = "Channel not in Stasis application"
BODY_KEY: web.RequestKey[Json] = web.RequestKey("ari_json_body", dict)


class HttpError(Exception):
    def __init__(self, status: int, message: str, key: str = "message") -> None:
        super().__init__(message)
        self.status = status
        self.body: Json = {key: message}


def json_response(status: int, body: Any) -> web.Response:
    # Exactly "application/json" (no charset), as Asterisk sends it.
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return web.Response(status=status, body=data, headers={"Content-Type": "application/json"})


def no_content() -> web.Response:
    return web.Response(status=204)


def _sim(request: web.Request) -> AriSimulator:
    return request.app[SIM_KEY]


def _engine(request: web.Request) -> SimEngine:
    return request.app[SIM_KEY].engine


def _authorised(request: web.Request, user: str, password: str) -> bool:
    wanted = f"{user}:{password}"
    if request.query.get("api_key") == wanted:
        return True
    header = request.headers.get("Authorization", "")
    if header.startswith("Basic "):
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            return base64.b64decode(header[6:], validate=True).decode() == wanted
    return False


def _unauthorised() -> web.Response:
    resp = json_response(401, {"message": "Authentication required"})
    resp.headers["WWW-Authenticate"] = 'Basic realm="Asterisk REST Interface"'
    return resp


@web.middleware
async def ari_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    sim = _sim(request)
    if sim.booting:
        resp: web.StreamResponse = json_response(503, {"message": "Asterisk not booted"})
        resp.headers["Connection"] = "close"
        resp.force_close()
    elif not _authorised(request, sim.user, sim.password):
        resp = _unauthorised()
    else:
        try:
            request[BODY_KEY] = await _json_body(request)
            resp = await handler(request)
        except HttpError as exc:
            resp = json_response(exc.status, exc.body)
    query = {k: ("***" if k == "api_key" else v) for k, v in request.query.items()}
    sim.request_log.append((request.method, request.path, query, resp.status))
    return resp


async def _json_body(request: web.Request) -> Json:
    """ARI takes parameters in the query or as fields of a JSON body."""
    if not request.can_read_body or request.content_type != "application/json":
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise HttpError(400, "Invalid JSON body") from exc
    return body if isinstance(body, dict) else {}


async def _common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "Asterisk"
    response.headers.setdefault("Cache-Control", "no-cache, no-store")


# --- lookups ----------------------------------------------------------------


def _channel(request: web.Request) -> SimChannel:
    ch = _engine(request).channels.get(request.match_info["channel_id"])
    if ch is None or not ch.alive:
        raise HttpError(404, "Channel not found")
    return ch


def _stasis_channel(request: web.Request) -> SimChannel:
    ch = _channel(request)
    if not ch.in_stasis:
        raise HttpError(409, NOT_IN_STASIS)
    return ch


def _param(request: web.Request, name: str, default: str = "") -> str:
    if name in request.query:
        return request.query[name]
    value = request.get(BODY_KEY, {}).get(name)  # absent before auth passed
    return default if value is None or isinstance(value, dict | list) else str(value)


def _args(request: web.Request) -> list[str]:
    raw = _param(request, "appArgs")
    return raw.split(",") if raw else []


# --- asterisk / applications ------------------------------------------------


async def asterisk_info(request: web.Request) -> web.Response:
    eng = _engine(request)
    full: Json = {
        "build": {"os": "Linux", "kernel": "", "machine": "x86_64", "options": "", "date": ""},
        "system": {"version": "22.11.0", "entity_id": ASTERISK_ID},
        "config": {"name": "", "default_language": "en", "setid": {"user": "", "group": ""}},
        "status": {"startup_time": eng.startup_time, "last_reload_time": eng.startup_time},
    }
    only = [k for k in _param(request, "only").split(",") if k]
    return json_response(200, {k: v for k, v in full.items() if not only or k in only})


async def asterisk_ping(request: web.Request) -> web.Response:
    body = {"ping": "pong", "timestamp": asterisk_time(), "asterisk_id": ASTERISK_ID}
    return json_response(200, body)


def _application(eng: SimEngine, name: str) -> Json:
    return {
        "name": name,
        "channel_ids": [c.id for c in eng.channels.values() if c.app == name and c.in_stasis],
        "bridge_ids": [b.id for b in eng.bridges.values() if b.app == name],
        "endpoint_ids": [],
        "device_names": [],
        "events_allowed": [],
        "events_disallowed": [],
    }


async def applications(request: web.Request) -> web.Response:
    eng = _engine(request)
    return json_response(200, [_application(eng, a) for a in sorted(eng.known_apps)])


async def application(request: web.Request) -> web.Response:
    eng, name = _engine(request), request.match_info["app"]
    if name not in eng.known_apps:
        raise HttpError(404, "Application not found")
    return json_response(200, _application(eng, name))


# --- channels ---------------------------------------------------------------


async def list_channels(request: web.Request) -> web.Response:
    chans = [c.to_json() for c in _engine(request).channels.values() if c.alive]
    return json_response(200, chans)


async def get_channel(request: web.Request) -> web.Response:
    return json_response(200, _channel(request).to_json())


async def originate(request: web.Request) -> web.Response:
    eng = _engine(request)
    endpoint = _param(request, "endpoint")
    app, exten = _param(request, "app"), _param(request, "extension")
    if not endpoint:
        raise HttpError(400, "Endpoint must be specified")
    if not app and not exten:
        raise HttpError(400, "Application or extension must be specified")
    channel_id = _new_channel_id(
        eng, request.match_info.get("channel_id") or _param(request, "channelId")
    )
    try:
        timeout = float(_param(request, "timeout", "30"))
        priority = int(_param(request, "priority", "1"))
    except ValueError as exc:
        raise HttpError(400, "Invalid parameter") from exc
    try:
        body = eng.dialer.originate(
            endpoint,
            app=app,
            app_args=_args(request),
            context=_param(request, "context"),
            exten=exten,
            priority=priority,
            caller_id=_param(request, "callerId"),
            timeout=timeout if timeout > 0 else 30.0,
            originator=_param(request, "originator"),
            channel_id=channel_id,
        )
    except AllocationFailed as exc:
        raise HttpError(500, "Allocation failed", key="error") from exc
    variables = request[BODY_KEY].get("variables")
    if isinstance(variables, dict):
        eng.channels[body["id"]].variables.update({str(k): str(v) for k, v in variables.items()})
    return json_response(200, body)


async def hangup(request: web.Request) -> web.Response:
    ch = _channel(request)
    reason = _param(request, "reason")
    if reason and reason not in HANGUP_REASONS:
        raise HttpError(400, "Invalid reason for hangup reason provided")
    _engine(request).hangup_ari(ch)
    await _sim(request).flush()
    return no_content()


async def answer(request: web.Request) -> web.Response:
    ch = _stasis_channel(request)
    await _engine(request).wait_control(ch)
    if ch.alive:
        _engine(request).answer(ch)
    await _sim(request).flush()
    return no_content()


async def control_noop(request: web.Request) -> web.Response:
    """ring, mute, hold, moh, silence, dtmf: queued behind playbacks, no visible effect here."""
    ch = _stasis_channel(request)
    await _engine(request).wait_control(ch)
    return no_content()


async def continue_(request: web.Request) -> web.Response:
    ch = _stasis_channel(request)
    await _engine(request).wait_control(ch)
    _engine(request).continue_in_dialplan(ch)
    await _sim(request).flush()
    return no_content()


async def play(request: web.Request) -> web.Response:
    ch = _stasis_channel(request)
    media = [m for raw in request.query.getall("media", []) for m in raw.split(",") if m]
    if not media:
        raise HttpError(500, "Failed to queue media for playback")
    pb_id = request.match_info.get("playback_id") or _param(request, "playbackId")
    lang = _param(request, "lang")
    body = _engine(request).play(ch, media, pb_id or None, lang)
    return json_response(201, body)


async def snoop(request: web.Request) -> web.Response:
    eng, ch = _engine(request), _channel(request)
    spy, whisper = _param(request, "spy", "none"), _param(request, "whisper", "none")
    if spy not in ("none", "both", "in", "out") or whisper not in ("none", "both", "in", "out"):
        raise HttpError(400, "Invalid direction specified")
    if spy == "none" and whisper == "none":
        raise HttpError(400, "Direction must be specified for at least spy or whisper")
    app = _param(request, "app")
    if not app:
        raise HttpError(400, "Application name is required")
    snoop_id = request.match_info.get("snoop_id") or _param(request, "snoopId")
    body = eng.dialer.snoop(ch, app, _args(request), spy, snoop_id)
    return json_response(200, body)


async def external_media(request: web.Request) -> web.Response:
    eng = _engine(request)
    host_port, fmt, app = (_param(request, k) for k in ("external_host", "format", "app"))
    if not host_port:
        raise HttpError(400, "external_host is required for all but websocket server connections")
    if not fmt:
        raise HttpError(400, "format cannot be empty")
    if not app:
        raise HttpError(400, "app cannot be empty")
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise HttpError(
            400, "external_host must be <host>:<port> for all transports other than websocket"
        )
    channel_id = _new_channel_id(eng, _param(request, "channelId"))
    encapsulation = _param(request, "encapsulation", "rtp")
    if encapsulation == "audiosocket":
        stream = _audiosocket_uuid(request, fmt)
        body = eng.dialer.audio_socket(app, host, int(port), fmt, channel_id, stream)
    elif fmt in eng.media_formats and encapsulation == "rtp":
        body = eng.dialer.external_media(app, host, int(port), fmt, channel_id)
    else:
        raise HttpError(500, "An internal error prevented this request from being handled")
    await _sim(request).flush()
    return json_response(200, body)


def _new_channel_id(eng: SimEngine, channel_id: str) -> str:
    """A caller-chosen id for a new channel ("" lets the engine pick), or 409 when taken."""
    if channel_id and channel_id in eng.channels:
        raise HttpError(409, "Channel with given unique ID already exists")
    return channel_id


def _audiosocket_uuid(request: web.Request, fmt: str) -> uuid.UUID:
    if _param(request, "transport", "tcp") != "tcp":
        raise HttpError(400, "AudioSocket requires transport tcp")
    if fmt not in AUDIOSOCKET_RATES:
        raise HttpError(500, "An internal error prevented this request from being handled")
    try:
        return uuid.UUID(_param(request, "data"))
    except ValueError as exc:
        raise HttpError(400, "data must be a UUID for the audiosocket encapsulation") from exc


async def get_variable(request: web.Request) -> web.Response:
    ch = _channel(request)
    name = _param(request, "variable")
    if not name:
        raise HttpError(400, "Variable name is required")
    value = _engine(request).get_variable(ch, name)
    if value is None:
        raise HttpError(404, "Provided variable was not found")
    return json_response(200, {"value": value})


async def set_variable(request: web.Request) -> web.Response:
    ch = _channel(request)
    name = _param(request, "variable")
    if not name:
        raise HttpError(400, "Variable name is required")
    _engine(request).set_variable(ch, name, _param(request, "value"))
    await _sim(request).flush()
    return no_content()


# --- bridges ----------------------------------------------------------------


def _found(value: T | None, message: str) -> T:
    if value is None:
        raise HttpError(404, message)
    return value


def _bridge_or_404(request: web.Request) -> SimBridge:
    return _found(
        _engine(request).bridges.get(request.match_info["bridge_id"]), "Bridge not found"
    )


async def list_bridges(request: web.Request) -> web.Response:
    return json_response(200, [b.to_json() for b in _engine(request).bridges.values()])


async def get_bridge(request: web.Request) -> web.Response:
    return json_response(200, _bridge_or_404(request).to_json())


async def create_bridge(request: web.Request) -> web.Response:
    eng = _engine(request)
    bridge_id = request.match_info.get("bridge_id") or _param(request, "bridgeId")
    # POST /bridges names no app; with a single app it is the one that gets BridgeDestroyed.
    app = next(iter(eng.known_apps)) if len(eng.known_apps) == 1 else None
    br = eng.create_bridge(
        app, _param(request, "type", "mixing"), _param(request, "name"), bridge_id
    )
    return json_response(200, br.to_json())


async def destroy_bridge(request: web.Request) -> web.Response:
    _engine(request).destroy_bridge(_bridge_or_404(request))
    await _sim(request).flush()
    return no_content()


def _members(request: web.Request) -> list[SimChannel]:
    raw = _param(request, "channel")
    if not raw:
        raise HttpError(400, "Missing parameter channel")
    eng, out = _engine(request), []
    for cid in raw.split(","):
        ch = eng.channels.get(cid)
        if ch is None or not ch.alive:
            raise HttpError(400, "Channel not found")
        if not ch.in_stasis:
            raise HttpError(422, NOT_IN_STASIS)
        out.append(ch)
    return out


async def add_channel(request: web.Request) -> web.Response:
    eng, br = _engine(request), _bridge_or_404(request)
    for ch in _members(request):
        await eng.wait_control(ch)
        if ch.alive and br.id in eng.bridges:
            eng.add_to_bridge(br, ch)
    await _sim(request).flush()
    return no_content()


async def remove_channel(request: web.Request) -> web.Response:
    eng, br = _engine(request), _bridge_or_404(request)
    members = _members(request)
    if any(ch.bridge_id != br.id for ch in members):
        raise HttpError(422, "Channel not in this bridge")
    for ch in members:
        await eng.wait_control(ch)
        if ch.alive and ch.bridge_id == br.id:
            eng.remove_from_bridge(br, ch)
    await _sim(request).flush()
    return no_content()


# --- playbacks --------------------------------------------------------------


def _playback(request: web.Request) -> SimPlayback:
    pb_id = request.match_info["playback_id"]
    return _found(_engine(request).playbacks.get(pb_id), "Playback not found")


async def get_playback(request: web.Request) -> web.Response:
    return json_response(200, _playback(request).to_json())


async def stop_playback(request: web.Request) -> web.Response:
    _engine(request).stop_playback(_playback(request))
    await _sim(request).flush()
    return no_content()


# --- events websocket -------------------------------------------------------


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


async def events_ws(request: web.Request) -> web.StreamResponse:
    sim = _sim(request)
    apps = [a for a in _param(request, "app").split(",") if a]
    if not apps:
        return web.Response(
            status=400, body=MISSING_APP_HTML.encode(), headers={"Content-Type": "text/html"}
        )
    ws = web.WebSocketResponse(autoping=True)
    sink = WsSink(ws, request.transport)
    for app in apps:
        sim.engine.sinks.setdefault(app, set()).add(sink)
        sim.engine.known_apps.add(app)
    sim.ws_sinks.add(sink)
    writer = asyncio.get_running_loop().create_task(sink.run())
    try:
        await ws.prepare(request)
        async for _msg in ws:
            pass  # clients have nothing to say on this socket
    finally:
        for app in apps:
            sim.engine.sinks.get(app, set()).discard(sink)
        sim.ws_sinks.discard(sink)
        writer.cancel()
    return ws


async def not_found(request: web.Request) -> web.Response:
    raise HttpError(404, "Resource not found")


def build_app(sim: AriSimulator) -> web.Application:
    app = web.Application(middlewares=[ari_middleware])
    app[SIM_KEY] = sim
    app.on_response_prepare.append(_common_headers)
    r = app.router
    ch, br = "/ari/channels/{channel_id}", "/ari/bridges/{bridge_id}"
    r.add_get("/ari/asterisk/info", asterisk_info)
    r.add_get("/ari/asterisk/ping", asterisk_ping)
    r.add_get("/ari/applications", applications)
    r.add_get("/ari/applications/{app}", application)
    r.add_get("/ari/events", events_ws)
    r.add_get("/ari/channels", list_channels)
    r.add_post("/ari/channels", originate)
    r.add_post("/ari/channels/externalMedia", external_media)
    r.add_get(ch, get_channel)
    r.add_post(ch, originate)
    r.add_delete(ch, hangup)
    r.add_post(ch + "/answer", answer)
    for control in ("ring", "mute", "hold", "moh", "silence"):
        r.add_post(f"{ch}/{control}", control_noop)
        r.add_delete(f"{ch}/{control}", control_noop)
    r.add_post(ch + "/dtmf", control_noop)
    r.add_post(ch + "/continue", continue_)
    r.add_post(ch + "/play", play)
    r.add_post(ch + "/play/{playback_id}", play)
    r.add_post(ch + "/snoop", snoop)
    r.add_post(ch + "/snoop/{snoop_id}", snoop)
    r.add_get(ch + "/variable", get_variable)
    r.add_post(ch + "/variable", set_variable)
    r.add_get("/ari/bridges", list_bridges)
    r.add_post("/ari/bridges", create_bridge)
    r.add_get(br, get_bridge)
    r.add_post(br, create_bridge)
    r.add_delete(br, destroy_bridge)
    r.add_post(br + "/addChannel", add_channel)
    r.add_post(br + "/removeChannel", remove_channel)
    r.add_get("/ari/playbacks/{playback_id}", get_playback)
    r.add_delete("/ari/playbacks/{playback_id}", stop_playback)
    r.add_route("*", "/{tail:.*}", not_found)
    return app
