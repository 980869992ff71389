"""Asterisk-wide resources of the simulated ARI: info, ping, modules, applications, sounds.

Split from :mod:`.rest` (calls, bridges, playbacks), which mounts these
routes with :func:`system_routes`. Module listing and application lookup
answer as the trace PBX does (``Module could not be found in running
modules``, ``Application not found``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from callrec.ari.sim.engine import SimEngine
from callrec.ari.sim.model import ASTERISK_ID, Json, asterisk_time
from callrec.ari.sim.wire import HttpError, json_response, param

# Where every resource handler finds the simulated Asterisk.
ENGINE_KEY: web.AppKey[SimEngine] = web.AppKey("ari_engine", SimEngine)


def engine_of(request: web.Request) -> SimEngine:
    return request.app[ENGINE_KEY]


async def asterisk_info(request: web.Request) -> web.Response:
    eng = engine_of(request)
    full: Json = {
        "build": {"os": "Linux", "kernel": "", "machine": "x86_64", "options": "", "date": ""},
        "system": {"version": "22.11.0", "entity_id": ASTERISK_ID},
        "config": {"name": "", "default_language": "en", "setid": {"user": "", "group": ""}},
        "status": {"startup_time": eng.startup_time, "last_reload_time": eng.startup_time},
    }
    only = [k for k in param(request, "only").split(",") if k]
    return json_response(200, {k: v for k, v in full.items() if not only or k in only})


def _module(name: str, about: tuple[str, str]) -> Json:
    description, support_level = about
    return {
        "name": name,
        "description": description,
        "use_count": 0,
        "status": "Running",
        "support_level": support_level,
    }


async def asterisk_modules(request: web.Request) -> web.Response:
    modules = engine_of(request).modules
    return json_response(200, [_module(name, modules[name]) for name in sorted(modules)])


async def asterisk_module(request: web.Request) -> web.Response:
    name = request.match_info["module"]
    about = engine_of(request).modules.get(name)
    if about is None:
        raise HttpError(404, "Module could not be found in running modules")
    return json_response(200, _module(name, about))


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


def _listed(eng: SimEngine, name: str) -> bool:
    """Asterisk lists an app from its websocket's connect until a cleanup finds it
    inactive and holding nothing (:meth:`~.core.SimCore.cleanup_apps`); the
    simulator also lists the apps it was started with."""
    return name in eng.registered or name in eng.declared_apps


async def applications(request: web.Request) -> web.Response:
    eng = engine_of(request)
    names = sorted(eng.registered | eng.declared_apps)
    return json_response(200, [_application(eng, a) for a in names])


async def application(request: web.Request) -> web.Response:
    eng, name = engine_of(request), request.match_info["app"]
    if not _listed(eng, name):
        raise HttpError(404, "Application not found")
    return json_response(200, _application(eng, name))


# File extension -> the format ``GET /sounds`` names (a WAV is "slin" there).
_SOUND_FORMATS = {"wav": "slin", "sln": "slin", "sln16": "slin16", "ulaw": "ulaw", "alaw": "alaw"}


def _sound_files(sounds_dir: Path | None) -> dict[str, list[Json]]:
    """Sound id -> formats by language, from ``<sounds_dir>/<lang>/<id>.<ext>``."""
    found: dict[str, list[Json]] = {}
    if sounds_dir is None or not sounds_dir.is_dir():
        return found
    for path in sorted(sounds_dir.glob("*/**/*.*")):
        fmt = _SOUND_FORMATS.get(path.suffix[1:])
        if fmt is None or not path.is_file():
            continue
        lang, *parts = path.relative_to(sounds_dir).with_suffix("").parts
        entry = {"language": lang, "format": fmt}
        found.setdefault("/".join(parts), []).append(entry)
    return found


async def sounds(request: web.Request) -> web.Response:
    """``GET /sounds``: what Asterisk finds in its sounds folder (res_ari_sounds)."""
    found = _sound_files(engine_of(request).sounds_dir)
    return json_response(200, [{"id": i, "formats": found[i]} for i in sorted(found)])


def system_routes(r: web.UrlDispatcher) -> None:
    r.add_get("/ari/asterisk/info", asterisk_info)
    r.add_get("/ari/asterisk/ping", asterisk_ping)
    r.add_get("/ari/asterisk/modules", asterisk_modules)
    r.add_get("/ari/asterisk/modules/{module}", asterisk_module)
    r.add_get("/ari/applications", applications)
    r.add_get("/ari/applications/{app}", application)
    r.add_get("/ari/sounds", sounds)
