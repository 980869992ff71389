"""REST resources of the simulated ARI: asterisk, applications, channels, bridges, playbacks.

The Asterisk-wide resources (info, ping, modules, applications) are in
:mod:`.system`. Status codes and bodies follow trace 06 exactly (including the odd ones: 400
for an unknown channel in addChannel, 422 vs 409 for "not in Stasis", 500
``{"error": "Allocation failed"}``, 500 for play without media). Auth, JSON
and error conventions are in :mod:`.wire`, the events websocket in
:mod:`.websocket`.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import TypeVar

from aiohttp import web

from callrec.ari.sim.dial import AllocationFailed, Dialer
from callrec.ari.sim.engine import SimEngine
from callrec.ari.sim.model import (
    HANGUP_REASONS,
    SimBridge,
    SimChannel,
    SimPlayback,
)
from callrec.ari.sim.system import ENGINE_KEY, engine_of, system_routes
from callrec.ari.sim.websocket import SOCKETS_KEY, EventSockets, events_ws
from callrec.ari.sim.wire import (
    BODY_KEY,
    Gate,
    HttpError,
    app_args,
    ari_application,
    json_response,
    no_content,
    param,
)
from callrec.media.codecs import AUDIOSOCKET_FORMATS

T = TypeVar("T")

DIALER_KEY: web.AppKey[Dialer] = web.AppKey("ari_dialer", Dialer)
NOT_IN_STASIS = "Channel not in Stasis application"


def _dialer(request: web.Request) -> Dialer:
    return request.app[DIALER_KEY]


async def _flush(request: web.Request) -> None:
    """Events the handler caused reach the websockets before its reply (traces 01, 03)."""
    await request.app[SOCKETS_KEY].flush()


# --- lookups ----------------------------------------------------------------


def _channel(request: web.Request) -> SimChannel:
    ch = engine_of(request).channels.get(request.match_info["channel_id"])
    if ch is None or not ch.alive:
        raise HttpError(404, "Channel not found")
    return ch


def _stasis_channel(request: web.Request) -> SimChannel:
    ch = _channel(request)
    if not ch.in_stasis:
        raise HttpError(409, NOT_IN_STASIS)
    return ch


# --- channels ---------------------------------------------------------------


async def list_channels(request: web.Request) -> web.Response:
    chans = [c.to_json() for c in engine_of(request).channels.values() if c.alive]
    return json_response(200, chans)


async def get_channel(request: web.Request) -> web.Response:
    return json_response(200, _channel(request).to_json())


async def originate(request: web.Request) -> web.Response:
    eng = engine_of(request)
    endpoint = param(request, "endpoint")
    app, exten = param(request, "app"), param(request, "extension")
    if not endpoint:
        raise HttpError(400, "Endpoint must be specified")
    if not app and not exten:
        raise HttpError(400, "Application or extension must be specified")
    channel_id = _new_channel_id(
        eng, request.match_info.get("channel_id") or param(request, "channelId")
    )
    try:
        timeout = float(param(request, "timeout", "30"))
        priority = int(param(request, "priority", "1"))
    except ValueError as exc:
        raise HttpError(400, "Invalid parameter") from exc
    try:
        body = _dialer(request).originate(
            endpoint,
            app=app,
            app_args=app_args(request),
            context=param(request, "context"),
            exten=exten,
            priority=priority,
            caller_id=param(request, "callerId"),
            timeout=timeout if timeout > 0 else 30.0,
            originator=param(request, "originator"),
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
    reason = param(request, "reason")
    if reason and reason not in HANGUP_REASONS:
        raise HttpError(400, "Invalid reason for hangup reason provided")
    engine_of(request).hangup_ari(ch)
    await _flush(request)
    return no_content()


async def answer(request: web.Request) -> web.Response:
    ch = _stasis_channel(request)
    await engine_of(request).wait_control(ch)
    if ch.alive:
        engine_of(request).answer(ch)
    await _flush(request)
    return no_content()


async def control_noop(request: web.Request) -> web.Response:
    """ring, mute, hold, moh, silence, dtmf: queued behind playbacks, no visible effect here."""
    ch = _stasis_channel(request)
    await engine_of(request).wait_control(ch)
    return no_content()


async def continue_(request: web.Request) -> web.Response:
    ch = _stasis_channel(request)
    await engine_of(request).wait_control(ch)
    engine_of(request).continue_in_dialplan(ch)
    await _flush(request)
    return no_content()


async def play(request: web.Request) -> web.Response:
    ch = _stasis_channel(request)
    media = [m for raw in request.query.getall("media", []) for m in raw.split(",") if m]
    if not media:
        raise HttpError(500, "Failed to queue media for playback")
    pb_id = request.match_info.get("playback_id") or param(request, "playbackId")
    lang = param(request, "lang")
    body = engine_of(request).player.play(ch, media, pb_id or None, lang)
    return json_response(201, body)


async def snoop(request: web.Request) -> web.Response:
    ch = _channel(request)
    spy, whisper = param(request, "spy", "none"), param(request, "whisper", "none")
    if spy not in ("none", "both", "in", "out") or whisper not in ("none", "both", "in", "out"):
        raise HttpError(400, "Invalid direction specified")
    if spy == "none" and whisper == "none":
        raise HttpError(400, "Direction must be specified for at least spy or whisper")
    app = param(request, "app")
    if not app:
        raise HttpError(400, "Application name is required")
    snoop_id = request.match_info.get("snoop_id") or param(request, "snoopId")
    body = _dialer(request).snoop(ch, app, app_args(request), spy, snoop_id)
    return json_response(200, body)


async def external_media(request: web.Request) -> web.Response:
    eng = engine_of(request)
    host_port, fmt, app = (param(request, k) for k in ("external_host", "format", "app"))
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
    channel_id = _new_channel_id(eng, param(request, "channelId"))
    encapsulation = param(request, "encapsulation", "rtp")
    if encapsulation == "audiosocket":
        stream = _audiosocket_uuid(request, fmt)
        body = _dialer(request).audio_socket(app, host, int(port), fmt, channel_id, stream)
    elif fmt in eng.media_formats and encapsulation == "rtp":
        body = _dialer(request).external_media(app, host, int(port), fmt, channel_id)
    else:
        raise HttpError(500, "An internal error prevented this request from being handled")
    await _flush(request)
    return json_response(200, body)


def _new_channel_id(eng: SimEngine, channel_id: str) -> str:
    """A caller-chosen id for a new channel ("" lets the engine pick), or 409 when taken."""
    if channel_id and channel_id in eng.channels:
        raise HttpError(409, "Channel with given unique ID already exists")
    return channel_id


def _audiosocket_uuid(request: web.Request, fmt: str) -> uuid.UUID:
    if param(request, "transport", "tcp") != "tcp":
        raise HttpError(400, "AudioSocket requires transport tcp")
    if fmt not in AUDIOSOCKET_FORMATS:
        raise HttpError(500, "An internal error prevented this request from being handled")
    try:
        return uuid.UUID(param(request, "data"))
    except ValueError as exc:
        raise HttpError(400, "data must be a UUID for the audiosocket encapsulation") from exc


async def get_variable(request: web.Request) -> web.Response:
    ch = _channel(request)
    name = param(request, "variable")
    if not name:
        raise HttpError(400, "Variable name is required")
    value = engine_of(request).get_variable(ch, name)
    if value is None:
        raise HttpError(404, "Provided variable was not found")
    return json_response(200, {"value": value})


async def set_variable(request: web.Request) -> web.Response:
    ch = _channel(request)
    name = param(request, "variable")
    if not name:
        raise HttpError(400, "Variable name is required")
    engine_of(request).set_variable(ch, name, param(request, "value"))
    await _flush(request)
    return no_content()


# --- bridges ----------------------------------------------------------------


def _found(value: T | None, message: str) -> T:
    if value is None:
        raise HttpError(404, message)
    return value


def _bridge_or_404(request: web.Request) -> SimBridge:
    return _found(
        engine_of(request).bridges.get(request.match_info["bridge_id"]), "Bridge not found"
    )


async def list_bridges(request: web.Request) -> web.Response:
    return json_response(200, [b.to_json() for b in engine_of(request).bridges.values()])


async def get_bridge(request: web.Request) -> web.Response:
    return json_response(200, _bridge_or_404(request).to_json())


async def create_bridge(request: web.Request) -> web.Response:
    eng = engine_of(request)
    bridge_id = request.match_info.get("bridge_id") or param(request, "bridgeId")
    # POST /bridges names no app: an app hears of the bridge (BridgeDestroyed
    # too) once a channel of its own has entered it (test PBX, pbx-sequences).
    br = eng.create_bridge(
        None, param(request, "type", "mixing"), param(request, "name"), bridge_id
    )
    return json_response(200, br.to_json())


async def bridge_play(request: web.Request) -> web.Response:
    br = _bridge_or_404(request)
    media = [m for raw in request.query.getall("media", []) for m in raw.split(",") if m]
    if not media:
        raise HttpError(500, "Failed to queue media for playback")
    pb_id = request.match_info.get("playback_id") or param(request, "playbackId")
    body = engine_of(request).bridge_play(br, media, pb_id or None, param(request, "lang"))
    # The announcer's BRIDGEPEER and PlaybackStarted come before the 201 (real PBX).
    await asyncio.sleep(0)
    await _flush(request)
    return json_response(201, body)


async def destroy_bridge(request: web.Request) -> web.Response:
    engine_of(request).destroy_bridge(_bridge_or_404(request))
    await _flush(request)
    return no_content()


def _members(request: web.Request) -> list[SimChannel]:
    raw = param(request, "channel")
    if not raw:
        raise HttpError(400, "Missing parameter channel")
    eng, out = engine_of(request), []
    for cid in raw.split(","):
        ch = eng.channels.get(cid)
        if ch is None or not ch.alive:
            raise HttpError(400, "Channel not found")
        if not ch.in_stasis:
            raise HttpError(422, NOT_IN_STASIS)
        out.append(ch)
    return out


async def add_channel(request: web.Request) -> web.Response:
    eng, br = engine_of(request), _bridge_or_404(request)
    for ch in _members(request):
        await eng.wait_control(ch)
        if ch.alive and br.id in eng.bridges:
            eng.add_to_bridge(br, ch)
    await _flush(request)
    return no_content()


async def remove_channel(request: web.Request) -> web.Response:
    eng, br = engine_of(request), _bridge_or_404(request)
    members = _members(request)
    if any(ch.bridge_id != br.id for ch in members):
        raise HttpError(422, "Channel not in this bridge")
    for ch in members:
        await eng.wait_control(ch)
        if ch.alive and ch.bridge_id == br.id:
            eng.remove_from_bridge(br, ch)
    await _flush(request)
    return no_content()


# --- playbacks --------------------------------------------------------------


def _playback(request: web.Request) -> SimPlayback:
    pb_id = request.match_info["playback_id"]
    return _found(engine_of(request).playbacks.get(pb_id), "Playback not found")


async def get_playback(request: web.Request) -> web.Response:
    return json_response(200, _playback(request).to_json())


async def stop_playback(request: web.Request) -> web.Response:
    engine_of(request).player.stop(_playback(request))
    await _flush(request)
    return no_content()


async def not_found(request: web.Request) -> web.Response:
    raise HttpError(404, "Resource not found")


def build_app(
    engine: SimEngine, dialer: Dialer, gate: Gate, sockets: EventSockets
) -> web.Application:
    """The simulated ARI's routes, as Asterisk 22 serves them under ``/ari``."""
    app = ari_application(gate)
    app[ENGINE_KEY] = engine
    app[DIALER_KEY] = dialer
    app[SOCKETS_KEY] = sockets
    r = app.router
    ch, br = "/ari/channels/{channel_id}", "/ari/bridges/{bridge_id}"
    system_routes(r)
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
    r.add_post(br + "/play", bridge_play)
    r.add_post(br + "/play/{playback_id}", bridge_play)
    r.add_get("/ari/playbacks/{playback_id}", get_playback)
    r.add_delete("/ari/playbacks/{playback_id}", stop_playback)
    r.add_route("*", "/{tail:.*}", not_found)
    return app
