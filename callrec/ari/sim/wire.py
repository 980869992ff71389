"""How the simulated ARI speaks HTTP: auth, JSON replies, parameters, errors.

Asterisk's own conventions, kept in one place so every handler in
:mod:`.rest` gets them alike: Basic auth or ``api_key``, 503 while booting,
parameters from the query or a JSON body, ``{"message": ...}`` errors, a
``Content-Type`` of exactly ``application/json`` and ``Server: Asterisk``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from callrec.ari.sim.model import Json

# One line per request: method, path, query (api_key masked), status.
RequestLogEntry = tuple[str, str, dict[str, str], int]


@dataclass
class Gate:
    """Who may ask, whether the PBX answers yet, and what was asked."""

    user: str
    password: str
    booting: bool = False
    # The first moments of a boot, before res_ari is loaded: Asterisk's HTTP
    # server answers every /ari request 404 with an HTML page (seen on the
    # real PBX after `core restart now`, about 130 ms before the 503s).
    loading: bool = False
    request_log: list[RequestLogEntry] = field(default_factory=list)
    # Requests (method, path) held unanswered until their event is set: an
    # Asterisk too busy to answer for a while. ``waiting`` counts arrivals.
    held: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    waiting: dict[tuple[str, str], int] = field(default_factory=dict)


NOT_FOUND_HTML = (
    '<!DOCTYPE HTML PUBLIC "-//IETF//DTD HTML 2.0//EN">\r\n<html><head>\r\n'
    "<title>404 Not Found</title>\r\n</head><body>\r\n<h1>Not Found</h1>\r\n"
    "<p>The requested URL was not found on this server.</p>\r\n</body></html>\r\n"
)

GATE_KEY: web.AppKey[Gate] = web.AppKey("ari_gate", Gate)
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


def param(request: web.Request, name: str, default: str = "") -> str:
    """An ARI parameter from the query, else from the JSON body, else ``default``."""
    if name in request.query:
        return request.query[name]
    value = request.get(BODY_KEY, {}).get(name)  # absent before auth passed
    return default if value is None or isinstance(value, dict | list) else str(value)


def app_args(request: web.Request) -> list[str]:
    raw = param(request, "appArgs")
    return raw.split(",") if raw else []


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
    gate = request.app[GATE_KEY]
    if gate.loading:
        resp: web.StreamResponse = web.Response(
            status=404, text=NOT_FOUND_HTML, content_type="text/html"
        )
        resp.force_close()
    elif gate.booting:
        resp = json_response(503, {"message": "Asterisk not booted"})
        resp.headers["Connection"] = "close"
        resp.force_close()
    elif not _authorised(request, gate.user, gate.password):
        resp = _unauthorised()
    else:
        try:
            request[BODY_KEY] = await _json_body(request)
            await _wait_if_held(gate, request)
            resp = await handler(request)
        except HttpError as exc:
            resp = json_response(exc.status, exc.body)
    query = {k: ("***" if k == "api_key" else v) for k, v in request.query.items()}
    gate.request_log.append((request.method, request.path, query, resp.status))
    return resp


async def _wait_if_held(gate: Gate, request: web.Request) -> None:
    """Answer later (:meth:`~callrec.ari.sim.AriSimulator.hold_requests`). Asterisk
    carries out a request whose client went away meanwhile, and so does this."""
    key = (request.method, request.path)
    held = gate.held.get(key)
    if held is None or held.is_set():
        return
    gate.waiting[key] = gate.waiting.get(key, 0) + 1
    await held.wait()


async def _json_body(request: web.Request) -> Json:
    """ARI takes parameters in the query or as fields of a JSON body."""
    if not request.can_read_body or request.content_type != "application/json":
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise HttpError(400, "Invalid JSON body") from exc
    return body if isinstance(body, dict) else {}


async def common_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["Server"] = "Asterisk"
    response.headers.setdefault("Cache-Control", "no-cache, no-store")


def ari_application(gate: Gate) -> web.Application:
    """An aiohttp app with Asterisk's auth, error and header conventions (routes to add)."""
    app = web.Application(middlewares=[ari_middleware])
    app[GATE_KEY] = gate
    app.on_response_prepare.append(common_headers)
    return app
