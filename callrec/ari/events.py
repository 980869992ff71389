"""Typed ARI models and events, parsed from Asterisk 22's JSON.

Only the fields callrec acts on are typed; every model keeps the raw dict so
nothing Asterisk sent is lost. An event type this module does not know
becomes a :class:`GenericEvent` rather than an error: Asterisk adds event
types between versions and the app must not stop on one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callrec.logutil import safe

logger = logging.getLogger(__name__)

# Channel variables Asterisk sets on an ExternalMedia (UnicastRTP) channel:
# the address its RTP comes from, which the media recorder accepts.
UNICASTRTP_LOCAL_ADDRESS = "UNICASTRTP_LOCAL_ADDRESS"
UNICASTRTP_LOCAL_PORT = "UNICASTRTP_LOCAL_PORT"

JsonDict = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CallerId:
    name: str
    number: str

    @classmethod
    def from_json(cls, data: JsonDict | None) -> CallerId:
        data = data or {}
        return cls(name=str(data.get("name", "")), number=str(data.get("number", "")))


@dataclass(frozen=True, slots=True)
class DialplanLocation:
    context: str
    exten: str
    priority: int
    app_name: str
    app_data: str

    @classmethod
    def from_json(cls, data: JsonDict | None) -> DialplanLocation:
        data = data or {}
        return cls(
            context=str(data.get("context", "")),
            exten=str(data.get("exten", "")),
            priority=int(data.get("priority", 0)),
            app_name=str(data.get("app_name", "")),
            app_data=str(data.get("app_data", "")),
        )


@dataclass(frozen=True, slots=True)
class Channel:
    """An ARI channel; ``rtp_address``/``rtp_port`` are set for ExternalMedia."""

    id: str
    name: str
    state: str
    protocol_id: str
    caller: CallerId
    connected: CallerId
    accountcode: str
    dialplan: DialplanLocation
    creationtime: str
    language: str
    channelvars: Mapping[str, str]
    rtp_address: str | None
    rtp_port: int | None
    raw: JsonDict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JsonDict) -> Channel:
        chanvars = {str(k): str(v) for k, v in (data.get("channelvars") or {}).items()}
        port = chanvars.get(UNICASTRTP_LOCAL_PORT)
        return cls(
            id=str(data["id"]),
            name=str(data.get("name", "")),
            state=str(data.get("state", "")),
            protocol_id=str(data.get("protocol_id", "")),
            caller=CallerId.from_json(data.get("caller")),
            connected=CallerId.from_json(data.get("connected")),
            accountcode=str(data.get("accountcode", "")),
            dialplan=DialplanLocation.from_json(data.get("dialplan")),
            creationtime=str(data.get("creationtime", "")),
            language=str(data.get("language", "")),
            channelvars=chanvars,
            rtp_address=chanvars.get(UNICASTRTP_LOCAL_ADDRESS),
            rtp_port=int(port) if port is not None and port.isdigit() else None,
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Bridge:
    id: str
    technology: str
    bridge_type: str
    bridge_class: str
    creator: str
    name: str
    channels: tuple[str, ...]
    creationtime: str
    raw: JsonDict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JsonDict) -> Bridge:
        return cls(
            id=str(data["id"]),
            technology=str(data.get("technology", "")),
            bridge_type=str(data.get("bridge_type", "")),
            bridge_class=str(data.get("bridge_class", "")),
            creator=str(data.get("creator", "")),
            name=str(data.get("name", "")),
            channels=tuple(str(c) for c in data.get("channels", ())),
            creationtime=str(data.get("creationtime", "")),
            raw=data,
        )


def target_channel_id(target_uri: str) -> str | None:
    """The channel id of a ``channel:<id>`` target URI (playbacks), else None."""
    prefix = "channel:"
    return target_uri[len(prefix) :] if target_uri.startswith(prefix) else None


@dataclass(frozen=True, slots=True)
class Playback:
    """A playback; ``state`` is queued, playing, continuing, done or failed."""

    id: str
    media_uri: str
    target_uri: str
    language: str
    state: str
    next_media_uri: str | None
    raw: JsonDict = field(repr=False, compare=False)

    @property
    def channel_id(self) -> str | None:
        """The target channel's id, when the playback targets a channel."""
        return target_channel_id(self.target_uri)

    @classmethod
    def from_json(cls, data: JsonDict) -> Playback:
        nxt = data.get("next_media_uri")
        return cls(
            id=str(data["id"]),
            media_uri=str(data.get("media_uri", "")),
            target_uri=str(data.get("target_uri", "")),
            language=str(data.get("language", "")),
            state=str(data.get("state", "")),
            next_media_uri=None if nxt is None else str(nxt),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class Application:
    name: str
    channel_ids: tuple[str, ...]
    bridge_ids: tuple[str, ...]
    raw: JsonDict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JsonDict) -> Application:
        return cls(
            name=str(data.get("name", "")),
            channel_ids=tuple(str(c) for c in data.get("channel_ids", ())),
            bridge_ids=tuple(str(b) for b in data.get("bridge_ids", ())),
            raw=data,
        )


@dataclass(frozen=True, slots=True)
class AsteriskInfo:
    """``GET /asterisk/info``; a new ``startup_time`` means the PBX restarted."""

    startup_time: str | None
    last_reload_time: str | None
    raw: JsonDict = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JsonDict) -> AsteriskInfo:
        status = data.get("status") or {}
        start = status.get("startup_time")
        reload = status.get("last_reload_time")
        return cls(
            startup_time=None if start is None else str(start),
            last_reload_time=None if reload is None else str(reload),
            raw=data,
        )


# --- events ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Fields every ARI event carries."""

    type: str
    timestamp: str
    application: str
    raw: JsonDict = field(repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class GenericEvent(Event):
    """An event type callrec does not model; ``raw`` has all of it."""


@dataclass(frozen=True, slots=True)
class ChannelEvent(Event):
    channel: Channel


@dataclass(frozen=True, slots=True)
class StasisStart(ChannelEvent):
    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StasisEnd(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelStateChange(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelConnectedLine(ChannelEvent):
    pass


@dataclass(frozen=True, slots=True)
class ChannelHangupRequest(ChannelEvent):
    """``soft`` true: ``cause`` is Asterisk's flag (:class:`~callrec.ari.causes.SoftHangup`);
    otherwise Q.850 (:class:`~callrec.ari.causes.HangupCause`); both absent for a remote BYE."""

    cause: int | None
    soft: bool
    tech_cause: int | None


@dataclass(frozen=True, slots=True)
class ChannelDestroyed(ChannelEvent):
    cause: int
    cause_txt: str
    tech_cause: int | None


@dataclass(frozen=True, slots=True)
class ChannelDtmfReceived(ChannelEvent):
    digit: str
    duration_ms: int


@dataclass(frozen=True, slots=True)
class ChannelVarset(Event):
    """``channel`` is None for a global variable."""

    channel: Channel | None
    variable: str
    value: str


@dataclass(frozen=True, slots=True)
class ChannelEnteredBridge(ChannelEvent):
    bridge: Bridge


@dataclass(frozen=True, slots=True)
class ChannelLeftBridge(ChannelEvent):
    bridge: Bridge


@dataclass(frozen=True, slots=True)
class BridgeCreated(Event):
    bridge: Bridge


@dataclass(frozen=True, slots=True)
class BridgeDestroyed(Event):
    bridge: Bridge


@dataclass(frozen=True, slots=True)
class PlaybackEvent(Event):
    playback: Playback


@dataclass(frozen=True, slots=True)
class PlaybackStarted(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True)
class PlaybackContinuing(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True)
class PlaybackFinished(PlaybackEvent):
    pass


@dataclass(frozen=True, slots=True)
class Dial(Event):
    """``dialstatus`` is "" at first, then RINGING, ANSWER, BUSY, ..."""

    peer: Channel
    caller: Channel | None
    dialstatus: str
    dialstring: str
    forward: str


# Connection transitions of the event stream: not ARI events, but delivered
# in the same stream so the consumer sees them in order with the events.


@dataclass(frozen=True, slots=True)
class Connected:
    """The events websocket is (re)connected; ``attempt`` counts from 1."""

    attempt: int


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The events websocket dropped; ``close_code`` is None if none came."""

    close_code: int | None
    reason: str


StreamItem = Event | Connected | Disconnected


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _base(data: JsonDict) -> dict[str, Any]:
    return {
        "type": str(data.get("type", "")),
        "timestamp": str(data.get("timestamp", "")),
        "application": str(data.get("application", "")),
        "raw": data,
    }


def _chan(data: JsonDict) -> dict[str, Any]:
    return {**_base(data), "channel": Channel.from_json(data["channel"])}


def _parse_stasis_start(d: JsonDict) -> Event:
    return StasisStart(**_chan(d), args=tuple(str(a) for a in d.get("args", ())))


def _parse_hangup_request(d: JsonDict) -> Event:
    return ChannelHangupRequest(
        **_chan(d),
        cause=_opt_int(d.get("cause")),
        soft=bool(d.get("soft", False)),
        tech_cause=_opt_int(d.get("tech_cause")),
    )


def _parse_destroyed(d: JsonDict) -> Event:
    return ChannelDestroyed(
        **_chan(d),
        cause=int(d.get("cause", 0)),
        cause_txt=str(d.get("cause_txt", "")),
        tech_cause=_opt_int(d.get("tech_cause")),
    )


def _parse_dtmf(d: JsonDict) -> Event:
    return ChannelDtmfReceived(
        **_chan(d), digit=str(d["digit"]), duration_ms=int(d.get("duration_ms", 0))
    )


def _parse_varset(d: JsonDict) -> Event:
    chan = d.get("channel")
    return ChannelVarset(
        **_base(d),
        channel=None if chan is None else Channel.from_json(chan),
        variable=str(d.get("variable", "")),
        value=str(d.get("value", "")),
    )


def _parse_dial(d: JsonDict) -> Event:
    caller = d.get("caller")
    return Dial(
        **_base(d),
        peer=Channel.from_json(d["peer"]),
        caller=None if caller is None else Channel.from_json(caller),
        dialstatus=str(d.get("dialstatus", "")),
        dialstring=str(d.get("dialstring", "")),
        forward=str(d.get("forward", "")),
    )


def _channel_only(kind: type[ChannelEvent]) -> Callable[[JsonDict], Event]:
    return lambda d: kind(**_chan(d))


def _with_bridge(
    kind: type[ChannelEnteredBridge | ChannelLeftBridge],
) -> Callable[[JsonDict], Event]:
    return lambda d: kind(**_chan(d), bridge=Bridge.from_json(d["bridge"]))


def _bridge_only(kind: type[BridgeCreated | BridgeDestroyed]) -> Callable[[JsonDict], Event]:
    return lambda d: kind(**_base(d), bridge=Bridge.from_json(d["bridge"]))


def _playback(kind: type[PlaybackEvent]) -> Callable[[JsonDict], Event]:
    return lambda d: kind(**_base(d), playback=Playback.from_json(d["playback"]))


_PARSERS: dict[str, Callable[[JsonDict], Event]] = {
    "StasisStart": _parse_stasis_start,
    "StasisEnd": _channel_only(StasisEnd),
    "ChannelStateChange": _channel_only(ChannelStateChange),
    "ChannelConnectedLine": _channel_only(ChannelConnectedLine),
    "ChannelHangupRequest": _parse_hangup_request,
    "ChannelDestroyed": _parse_destroyed,
    "ChannelDtmfReceived": _parse_dtmf,
    "ChannelVarset": _parse_varset,
    "ChannelEnteredBridge": _with_bridge(ChannelEnteredBridge),
    "ChannelLeftBridge": _with_bridge(ChannelLeftBridge),
    "BridgeCreated": _bridge_only(BridgeCreated),
    "BridgeDestroyed": _bridge_only(BridgeDestroyed),
    "PlaybackStarted": _playback(PlaybackStarted),
    "PlaybackContinuing": _playback(PlaybackContinuing),
    "PlaybackFinished": _playback(PlaybackFinished),
    "Dial": _parse_dial,
}


def parse_event(data: JsonDict) -> Event:
    """One websocket message as a typed event.

    Unknown types, and known types missing a field callrec needs, come back
    as :class:`GenericEvent` so one odd message never stops the event loop.
    """
    parser = _PARSERS.get(str(data.get("type", "")))
    if parser is not None:
        try:
            return parser(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            logger.warning(
                "ARI event %s not parsed (%s); kept raw",
                safe(str(data.get("type"))),
                safe(str(exc), 200),
            )
    return GenericEvent(**_base(data))
