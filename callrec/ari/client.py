"""A thin typed ARI client on aiohttp: REST calls and the events websocket.

ari-py is Python-2 only, so this is our own layer. Every parameter goes in
the query string, as Asterisk 22 accepts and the recorded traces show (the
one exception: originate's channel variables, which ARI takes only as a JSON
body). One :class:`aiohttp.ClientSession` serves every request.

The password is never logged and never put in an exception message: the
websocket URL carries it as ``api_key``, so that URL is not logged either.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from callrec.ari.events import (
    Application,
    AsteriskInfo,
    Bridge,
    Channel,
    Connected,
    Disconnected,
    Playback,
    StreamItem,
    parse_event,
)
from callrec.ari.outage import OutageLog
from callrec.ari.system import Module, Sound
from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.errors import (
    AriAuthError,
    AriConflict,
    AriError,
    AriNotFound,
    AriUnavailable,
)

logger = logging.getLogger(__name__)

QueryValue = str | int | bool | list[str] | None

DEFAULT_TIMEOUT = 30.0
# Handshake answers of a booting Asterisk: retried (any other refusal is fatal).
_RETRIED_STATUS = {
    404: "404 (Asterisk still loading res_ari, or ari.url is wrong)",
    503: "503 (Asterisk still booting)",
}


@dataclass(frozen=True, slots=True)
class Backoff:
    """Reconnect delays: ``initial`` doubling up to ``maximum`` seconds."""

    initial: float = 0.1
    factor: float = 2.0
    maximum: float = 2.0

    def next(self, delay: float) -> float:
        return min(delay * self.factor, self.maximum)


def _query(params: Mapping[str, QueryValue]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, list):
            out[key] = ",".join(value)
        else:
            out[key] = str(value)
    return out


def _unreachable(exc: BaseException) -> str:
    """Why a request got no HTTP answer, in plain words (never the URL's query)."""
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, aiohttp.ClientConnectorError):
        os_error = exc.os_error
        if isinstance(os_error, ConnectionRefusedError):
            return "connection refused"
        if isinstance(os_error, socket.gaierror):
            return "host name not found"
        return os_error.strerror or type(os_error).__name__
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "connection closed without an answer"
    return type(exc).__name__


def _message(body: Any, text: str) -> str:
    """Asterisk's error text: ``message``, or ``error`` (500 Allocation failed)."""
    if isinstance(body, dict):
        for key in ("message", "error"):
            if key in body:
                return str(body[key])
    return text.strip()[:200] or "no message"


def _error(method: str, path: str, status: int, message: str) -> AriError:
    kind: type[AriError] = AriError
    if status == 404:
        kind = AriNotFound
    elif status in (409, 422):
        kind = AriConflict
    elif status == 401:
        kind = AriAuthError
    return kind(method, path, status, message)


class AriClient:
    """REST methods return typed models; :meth:`events` streams typed events."""

    def __init__(
        self,
        base_url: str,
        user: str,
        password: str,
        app: str,
        *,
        session: aiohttp.ClientSession | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        backoff: Backoff | None = None,
        clock: Clock = SYSTEM_CLOCK,
        heartbeat: float | None = 10.0,
    ) -> None:
        root = base_url.rstrip("/")
        if root.endswith("/ari"):
            root = root[: -len("/ari")]
        self.base_url = root
        self.app = app
        self._user = user
        self._password = password
        token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
        self._headers = {"Authorization": f"Basic {token}"}
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._backoff = backoff or Backoff()
        self._clock = clock
        # Pings find a peer that vanished without closing TCP (PBX host died).
        self._heartbeat = heartbeat

    def __repr__(self) -> str:
        return f"AriClient({self.base_url!r}, user={self._user!r}, app={self.app!r})"

    async def __aenter__(self) -> AriClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session if this client created it."""
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        # Created lazily: aiohttp wants a running loop when a session is made.
        if self._session is None:
            # The session timeout bounds the websocket handshake too (not the
            # socket's life): a PBX that accepts TCP and never answers.
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    # --- transport ------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        params: Mapping[str, QueryValue] | None = None,
        *,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        """One ARI request (``path`` below ``/ari``); the parsed JSON or None."""
        url = f"{self.base_url}/ari{path}"
        try:
            async with self._http().request(
                method,
                url,
                params=_query(params or {}),
                json=body,
                headers=self._headers,
                timeout=self._timeout,
            ) as resp:
                text = await resp.text()
                status = resp.status
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise AriUnavailable(
                f"ARI {method} {path}: {self.base_url} unreachable ({_unreachable(exc)})"
            ) from None
        data = self._decode(text)
        if status < 300:
            return data
        message = _message(data, text)
        if status == 503:
            raise AriUnavailable(f"ARI {method} {path}: 503 {message}")
        raise _error(method, path, status, message)

    @staticmethod
    def _decode(text: str) -> Any:
        if not text:
            return None
        try:
            return json.loads(text)
        except ValueError:
            return None

    # --- channels -------------------------------------------------------

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{channel_id}/answer")

    async def hangup(self, channel_id: str, reason: str | None = None) -> None:
        await self.request("DELETE", f"/channels/{channel_id}", {"reason": reason})

    async def continue_in_dialplan(self, channel_id: str) -> None:
        """Let the channel leave Stasis and go on in the dialplan after ``Stasis()``."""
        await self.request("POST", f"/channels/{channel_id}/continue")

    async def get_channel(self, channel_id: str) -> Channel:
        return Channel.from_json(await self.request("GET", f"/channels/{channel_id}"))

    async def list_channels(self) -> list[Channel]:
        return [Channel.from_json(c) for c in await self.request("GET", "/channels")]

    async def get_variable(self, channel_id: str, name: str) -> str:
        data = await self.request("GET", f"/channels/{channel_id}/variable", {"variable": name})
        return str(data.get("value", "")) if isinstance(data, dict) else ""

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        await self.request(
            "POST", f"/channels/{channel_id}/variable", {"variable": name, "value": value}
        )

    async def play(
        self,
        channel_id: str,
        media: str | list[str],
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        params: dict[str, QueryValue] = {"media": media, "playbackId": playback_id, "lang": lang}
        return Playback.from_json(
            await self.request("POST", f"/channels/{channel_id}/play", params)
        )

    async def get_playback(self, playback_id: str) -> Playback:
        """The playback while it is queued or playing; AriNotFound once it has ended."""
        return Playback.from_json(await self.request("GET", f"/playbacks/{playback_id}"))

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{playback_id}")

    async def originate(
        self,
        endpoint: str,
        *,
        app: str,
        app_args: str | None = None,
        timeout: int | None = None,  # noqa: ASYNC109 (ARI dial timeout, seconds)
        caller_id: str | None = None,
        originator: str | None = None,
        channel_id: str | None = None,
        variables: Mapping[str, str] | None = None,
    ) -> Channel:
        params: dict[str, QueryValue] = {
            "endpoint": endpoint,
            "app": app,
            "appArgs": app_args,
            "timeout": timeout,
            "callerId": caller_id,
            "originator": originator,
            "channelId": channel_id,
        }
        body = {"variables": dict(variables)} if variables else None
        return Channel.from_json(await self.request("POST", "/channels", params, body=body))

    async def snoop(
        self,
        channel_id: str,
        *,
        app: str,
        app_args: str | None = None,
        spy: str = "both",
        whisper: str = "none",
        snoop_id: str | None = None,
    ) -> Channel:
        params: dict[str, QueryValue] = {
            "spy": spy,
            "whisper": whisper,
            "app": app,
            "appArgs": app_args,
            "snoopId": snoop_id,
        }
        data = await self.request("POST", f"/channels/{channel_id}/snoop", params)
        return Channel.from_json(data)

    async def external_media(
        self,
        *,
        app: str,
        external_host: str,
        format: str,
        channel_id: str | None = None,
        encapsulation: str = "rtp",
        transport: str = "udp",
        direction: str | None = None,
        data: str | None = None,
    ) -> Channel:
        """An ExternalMedia channel; its ``rtp_address``/``rtp_port`` say where
        Asterisk sends RTP from."""
        params: dict[str, QueryValue] = {
            "app": app,
            "external_host": external_host,
            "format": format,
            "channelId": channel_id,
            "encapsulation": encapsulation,
            "transport": transport,
            "direction": direction,
            "data": data,
        }
        return Channel.from_json(await self.request("POST", "/channels/externalMedia", params))

    # --- bridges --------------------------------------------------------

    async def create_bridge(
        self, type: str = "mixing", bridge_id: str | None = None, name: str | None = None
    ) -> Bridge:
        params: dict[str, QueryValue] = {"type": type, "bridgeId": bridge_id, "name": name}
        return Bridge.from_json(await self.request("POST", "/bridges", params))

    async def get_bridge(self, bridge_id: str) -> Bridge:
        return Bridge.from_json(await self.request("GET", f"/bridges/{bridge_id}"))

    async def list_bridges(self) -> list[Bridge]:
        return [Bridge.from_json(b) for b in await self.request("GET", "/bridges") or ()]

    async def add_channels(
        self, bridge_id: str, channel_ids: list[str], *, absorb_dtmf: bool = False
    ) -> None:
        """``absorb_dtmf``: their digits stay out of the bridge (the other side
        hears none, inband or RFC 4733); Asterisk still reports them."""
        params: dict[str, QueryValue] = {"channel": channel_ids}
        if absorb_dtmf:
            params["absorbDTMF"] = True
        await self.request("POST", f"/bridges/{bridge_id}/addChannel", params)

    async def remove_channel(self, bridge_id: str, channel_id: str) -> None:
        await self.request("POST", f"/bridges/{bridge_id}/removeChannel", {"channel": channel_id})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{bridge_id}")

    async def play_on_bridge(
        self,
        bridge_id: str,
        media: str | list[str],
        playback_id: str | None = None,
        lang: str | None = None,
    ) -> Playback:
        """Play into a bridge: every member hears it (its ``target_uri`` is ``bridge:<id>``)."""
        params: dict[str, QueryValue] = {"media": media, "playbackId": playback_id, "lang": lang}
        data = await self.request("POST", f"/bridges/{bridge_id}/play", params)
        return Playback.from_json(data)

    # --- system ---------------------------------------------------------

    async def get_application(self, name: str | None = None) -> Application:
        data = await self.request("GET", f"/applications/{name or self.app}")
        return Application.from_json(data)

    async def asterisk_info(self, only: str | None = "status") -> AsteriskInfo:
        return AsteriskInfo.from_json(await self.request("GET", "/asterisk/info", {"only": only}))

    async def ping(self) -> str | None:
        """Asterisk's wall clock when it answered (``2026-12-07T03:00:07.431+0000``), if given."""
        data = await self.request("GET", "/asterisk/ping")
        stamp = data.get("timestamp") if isinstance(data, dict) else None
        return None if stamp is None else str(stamp)

    async def list_sounds(self) -> list[Sound]:
        """Every sound Asterisk finds in its own sounds folder, by language and format."""
        data = await self.request("GET", "/sounds")
        rows = data if isinstance(data, list) else []
        return [Sound.from_json(s) for s in rows if isinstance(s, dict)]

    async def list_modules(self) -> list[Module]:
        """The modules Asterisk has loaded (``res_ari.so``, ``chan_rtp.so``, ...)."""
        data = await self.request("GET", "/asterisk/modules")
        rows = data if isinstance(data, list) else []
        return [Module.from_json(m) for m in rows if isinstance(m, dict)]

    # --- events ---------------------------------------------------------

    async def events(self, *, subscribe_all: bool = False) -> AsyncIterator[StreamItem]:
        """Typed events for ever, reconnecting on drops.

        Yields :class:`Connected` after each successful handshake and
        :class:`Disconnected` when the socket drops; in between, the parsed
        events. Refused connections, timeouts, HTTP 503 and abnormal closes are
        retried with the backoff, and so is 404: a booting Asterisk answers
        every /ari request 404 until res_ari is loaded (about 130 ms after
        ``core restart now`` on Asterisk 22), so a reconnect landing there must
        not end the recorder. Each failure is logged with its reason, louder
        the longer it lasts (:mod:`callrec.ari.outage`): a wrong URL ends up
        an ERROR line in the journal, not a silent loop. A 401
        raises :class:`AriAuthError` (retrying a wrong password cannot help),
        and so does any other handshake refusal, as :class:`AriError` (e.g.
        400 for a bad app name).
        """
        delay = self._backoff.initial
        attempt = 0
        outage = OutageLog(self.base_url, self._clock)
        while True:
            attempt += 1
            outage.attempt()
            ws = await self._connect(subscribe_all)
            if isinstance(ws, str):
                outage.failed(ws, attempt)
                await self._clock.sleep(delay)
                delay = self._backoff.next(delay)
                continue
            outage.connected()
            delay = self._backoff.initial
            yield Connected(attempt)
            attempt = 0
            try:
                async for item in self._read(ws):
                    yield item
            finally:
                await ws.close()
            code = ws.close_code
            reason = "abnormal close" if code in (None, 1006) else f"closed with code {code}"
            logger.warning("ARI events websocket %s: %s", self.base_url, reason)
            outage.dropped()
            yield Disconnected(code, reason)
            await self._clock.sleep(delay)

    async def _connect(self, subscribe_all: bool) -> aiohttp.ClientWebSocketResponse | str:
        """The events websocket, or why this attempt failed and is worth retrying."""
        params = {
            "app": self.app,
            "api_key": f"{self._user}:{self._password}",
            "subscribeAll": "true" if subscribe_all else "false",
        }
        try:
            return await self._http().ws_connect(
                f"{self.base_url}/ari/events", params=params, heartbeat=self._heartbeat
            )
        except aiohttp.WSServerHandshakeError as exc:
            # str(exc) holds the URL with the api_key: never log or re-raise it.
            if exc.status == 401:
                raise AriAuthError("GET", "/events", 401, "Authentication required") from None
            if exc.status in _RETRIED_STATUS:
                return _RETRIED_STATUS[exc.status]
            raise AriError("GET", "/events", exc.status, "websocket refused") from None
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            return _unreachable(exc)

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> AsyncIterator[StreamItem]:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            try:
                data = json.loads(msg.data)
            except ValueError:
                logger.warning("ARI events %s: message is not JSON; skipped", self.base_url)
                continue
            if isinstance(data, dict):
                yield parse_event(data)
