"""State objects of the ARI simulator and their Asterisk 22 JSON shapes.

Everything here is plain data plus the small pure helpers that render it the
way the traces in ``tests/fixtures/ari-traces`` show it. Behaviour (who emits
which event when) lives in :mod:`callrec.ari.sim.engine`.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

ASTERISK_ID = "02:00:00:00:00:01"
# Asterisk keeps caller-id fields in 80-byte buffers (trace 09: 79 characters survive).
CALLERID_MAX = 79

BUILTIN_SOUNDS: dict[str, float] = {
    "hello-world": 1.40,
    "beep": 0.43,
    "demo-congrats": 30.3,
    "tt-weasels": 2.95,
}

# The modules of the trace PBX that callrec and its doctor care about, as
# ``GET /asterisk/modules`` lists them: name -> (description, support level).
LOADED_MODULES: dict[str, tuple[str, str]] = {
    "app_stasis.so": ("Stasis dialplan application", "core"),
    "bridge_holding.so": ("Holding bridge module", "core"),
    "bridge_native_rtp.so": ("Native RTP bridging module", "core"),
    "bridge_simple.so": ("Simple two channel bridging module", "core"),
    "bridge_softmix.so": ("Multi-party software based channel mixing", "core"),
    "chan_audiosocket.so": ("AudioSocket Channel", "extended"),
    "chan_bridge_media.so": ("Bridge Media Channel Driver", "core"),
    "chan_pjsip.so": ("PJSIP Channel Driver", "core"),
    "chan_rtp.so": ("RTP Media Channel", "core"),
    "codec_alaw.so": ("A-law Coder/Decoder", "core"),
    "codec_resample.so": ("SLIN Resampling Codec", "core"),
    "codec_ulaw.so": ("mu-Law Coder/Decoder", "core"),
    "format_pcm.so": ("Raw/Sun uLaw/ALaw 8KHz (PCM,PCMA,AU), G.722 16Khz", "core"),
    "format_sln.so": ("Raw Signed Linear Audio support (SLN) 8khz-192khz", "core"),
    "format_wav.so": ("Microsoft WAV/WAV16 format (8kHz/16kHz Signed Linear)", "core"),
    "res_agi.so": ("Asterisk Gateway Interface (AGI)", "core"),
    "res_ari.so": ("Asterisk RESTful Interface", "core"),
    "res_ari_applications.so": ("RESTful API module - Stasis application resources", "core"),
    "res_ari_asterisk.so": ("RESTful API module - Asterisk resources", "core"),
    "res_ari_bridges.so": ("RESTful API module - Bridge resources", "core"),
    "res_ari_channels.so": ("RESTful API module - Channel resources", "core"),
    "res_ari_events.so": ("RESTful API module - WebSocket resource", "core"),
    "res_ari_playbacks.so": ("RESTful API module - Playback control resources", "core"),
    "res_audiosocket.so": ("AudioSocket support", "extended"),
    "res_http_websocket.so": ("HTTP WebSocket Support", "core"),
    "res_rtp_asterisk.so": ("Asterisk RTP Stack", "core"),
    "res_stasis.so": ("Stasis application support", "core"),
    "res_stasis_answer.so": ("Stasis application answer support", "core"),
    "res_stasis_playback.so": ("Stasis application playback support", "core"),
    "res_stasis_snoop.so": ("Stasis application snoop support", "core"),
}

HANGUP_REASONS = frozenset(
    {
        "normal",
        "busy",
        "congestion",
        "no_answer",
        "timeout",
        "rejected",
        "unallocated",
        "normal_unspecified",
        "number_incomplete",
        "codec_mismatch",
        "interworking",
        "failure",
        "answered_elsewhere",
    }
)

Json = dict[str, Any]
Int16Array = npt.NDArray[np.int16]
AudioInput = Path | str | npt.NDArray[Any] | None

EndpointKind = Literal["answer", "busy", "no-answer", "absent"]


@dataclass
class CallerScenario:
    """What a simulated caller does once its call reaches ``Stasis``.

    ``caller_name`` may be ``bytes`` to model a SIP display name that is not
    valid UTF-8 (trace 09); ``caller_number`` is the raw SIP user part, so it
    may carry percent escapes and ``;params``. ``audio`` is what the caller
    says (a WAV path, or int16 samples at ``audio_rate``), silence after its
    end. ``hangup_after`` and the ``dtmf`` times count from the answer.
    """

    exten: str = "100"
    caller_name: str | bytes = "sipp"
    caller_number: str = "sipp"
    language: str = "en"
    audio: AudioInput = None
    audio_rate: int = 8000
    hangup_after: float | None = None
    dtmf: list[tuple[float, str]] = field(default_factory=list)
    app_args: list[str] | None = None
    # Hang up this many seconds after entering Stasis if still not answered.
    abandon_after: float | None = None
    app: str = "callrec"
    endpoint: str = "caller"
    context: str = "from-caller"


@dataclass
class EndpointBehaviour:
    """How an originated destination (``PJSIP/agent``, ``Local/100@internal``) reacts.

    ``answer``: rings, answers after ``answer_after`` s, then produces
    ``audio`` (or silence) and hangs up by itself after ``hangup_after`` s.
    ``busy``: SIP 486 after ``answer_after`` s (trace README, 04b).
    ``no-answer``: nothing until the originate ``timeout`` (trace 04a).
    ``absent``: no contact registered, originate fails with 500.
    """

    kind: EndpointKind = "answer"
    answer_after: float = 0.2
    audio: AudioInput = None
    audio_rate: int = 8000
    hangup_after: float | None = None
    context: str = ""


@dataclass
class DialplanStep:
    """One priority of a simulated dialplan extension; ``duration`` for Playback/Wait."""

    app_name: str
    app_data: str = ""
    duration: float = 0.0


@dataclass
class RtpSendStats:
    """What the simulator sent to one ExternalMedia peer (kept after hang-up)."""

    channel_id: str
    ssrc: int
    payload_type: int
    first_seq: int | None = None
    packets_generated: int = 0
    packets_sent: int = 0
    datagrams_sent: int = 0
    payload_bytes_sent: int = 0
    dropped: list[int] = field(default_factory=list)
    duplicated: list[int] = field(default_factory=list)
    reordered: list[int] = field(default_factory=list)
    foreign_sent: int = 0
    payloads: list[bytes] = field(default_factory=list)


@dataclass
class RtpFaults:
    """Deterministic faults for one ExternalMedia stream, by packet index (0-based).

    Each field is a set of packet indexes or a rate in [0, 1] drawn from the
    simulator's seeded generator. ``reorder`` sends packet i after i+1;
    ``foreign`` sends an extra packet with that index's header from another
    UDP port (a foreign source the recorder must ignore).
    """

    drop: frozenset[int] | float = frozenset()
    duplicate: frozenset[int] | float = frozenset()
    reorder: frozenset[int] | float = frozenset()
    foreign: frozenset[int] | float = frozenset()


@dataclass(eq=False)
class SimPlayback:
    id: str
    media: list[str]
    channel_id: str
    language: str
    index: int = 0
    state: str = "queued"
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: bool = False
    over: bool = False
    # "bridge:<id>" for a bridge's playback (played by its announcer channel).
    target_uri: str = ""

    def to_json(self) -> Json:
        out: Json = {"id": self.id, "media_uri": self.media[self.index]}
        if self.index + 1 < len(self.media):
            out["next_media_uri"] = self.media[self.index + 1]
        out["target_uri"] = self.target_uri or f"channel:{self.channel_id}"
        out["language"] = self.language
        out["state"] = self.state
        return out


@dataclass(eq=False)
class SimChannel:
    id: str
    name: str
    # "announcer": the hidden channel that plays a bridge's playbacks into it.
    kind: Literal["caller", "pjsip", "local", "unicast", "audiosocket", "snoop", "announcer"]
    state: str
    protocol_id: str = ""
    caller_name: str = ""
    caller_number: str = ""
    connected_name: str = ""
    connected_number: str = ""
    context: str = "default"
    exten: str = "s"
    priority: int = 1
    app_name: str = "AppDial2"
    app_data: str = "(Outgoing Line)"
    creationtime: str = ""
    language: str = "en"
    # Stasis subscription: the app that gets this channel's events.
    app: str | None = None
    in_stasis: bool = False
    # Channels created through ARI with an app stay subscribed after
    # StasisEnd and so get ChannelDestroyed (trace README, cross-cutting).
    sends_destroyed: bool = False
    alive: bool = True
    variables: dict[str, str] = field(default_factory=dict)
    channelvars: dict[str, str] | None = None
    bridge_id: str | None = None
    playbacks: deque[SimPlayback] = field(default_factory=deque)
    current_playback: SimPlayback | None = None
    playback_task: asyncio.Task[None] | None = None
    control_idle: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # Media: samples per rate, and the global sample index (8 kHz) at answer.
    audio: dict[int, Int16Array] = field(default_factory=dict)
    media_start: float | None = None
    # What the channel's own playback plays to it now, and since when: the
    # channel hears it (a spy-out snoop records it), its bridge does not.
    heard: dict[int, Int16Array] = field(default_factory=dict)
    heard_start: float = 0.0
    snoop_target: str | None = None
    snoop_spy: str = "both"
    dialstring: str = ""
    saved_dialplan: tuple[str, str, int, str, str] = ("default", "s", 1, "AppDial2", "")

    def __post_init__(self) -> None:
        self.control_idle.set()

    def set_dialplan(self, context: str, exten: str, priority: int, app: str, data: str) -> None:
        self.context, self.exten, self.priority = context, exten, priority
        self.app_name, self.app_data = app, data

    def to_json(self, *, with_vars: bool = False) -> Json:
        out: Json = {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "protocol_id": self.protocol_id,
            "caller": {"name": self.caller_name, "number": self.caller_number},
            "connected": {"name": self.connected_name, "number": self.connected_number},
            "accountcode": "",
            "dialplan": {
                "context": self.context,
                "exten": self.exten,
                "priority": self.priority,
                "app_name": self.app_name,
                "app_data": self.app_data,
            },
            "creationtime": self.creationtime,
            "language": self.language,
        }
        if with_vars and self.channelvars is not None:
            out["channelvars"] = dict(self.channelvars)
        return out


@dataclass(eq=False)
class SimBridge:
    id: str
    name: str
    bridge_type: str
    creationtime: str
    app: str | None
    technology: str = "simple_bridge"
    channels: list[str] = field(default_factory=list)
    # Joins with the first bridge playback; never listed among the channels
    # (real Asterisk: only the members' BRIDGEPEER names it).
    announcer: SimChannel | None = None

    def to_json(self) -> Json:
        return {
            "id": self.id,
            "technology": self.technology,
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": self.name,
            "channels": list(self.channels),
            "creationtime": self.creationtime,
            "video_mode": "talker",
        }


def asterisk_time(ts: float | None = None) -> str:
    """Asterisk's timestamp style: ``2026-11-29T01:29:19.043+0000``."""
    now = datetime.fromtimestamp(time.time() if ts is None else ts, UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def make_event(kind: str, app: str, *, pre: Json | None = None, **fields: Any) -> Json:
    """An event with Asterisk's key order: extra leading keys, type, timestamp, fields."""
    ev: Json = dict(pre or {})
    ev["type"] = kind
    ev["timestamp"] = asterisk_time()
    ev.update(fields)
    ev["asterisk_id"] = ASTERISK_ID
    ev["application"] = app
    return ev


def callerid_name(raw: str | bytes) -> str:
    """A SIP display name as chan_pjsip stores it: 79 bytes, invalid UTF-8 -> U+FFFD."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    return data[:CALLERID_MAX].decode("utf-8", errors="replace")


def callerid_number(raw: str) -> str | None:
    """A SIP user part as Asterisk shows it, or None when pjsip rejects the From.

    URI parameters are dropped and percent escapes decoded (trace 09); raw
    non-ASCII in the user part is a SIP syntax error: the call never appears.
    """
    if any(ord(c) > 0x7E for c in raw):
        return None
    user = raw.split(";", 1)[0]
    decoded = urllib.parse.unquote(user, encoding="utf-8", errors="replace")
    return callerid_name(decoded)


def parse_caller_id(value: str) -> tuple[str, str]:
    """``Name <number>`` (originate ``callerId``) as (name, number)."""
    value = value.strip()
    if "<" in value and value.endswith(">"):
        name, _, rest = value.partition("<")
        return name.strip().strip('"'), rest[:-1].strip()
    if value.isdigit() or value.startswith("+"):
        return "", value
    return value, ""


def sound_file(sounds_dir: Path | None, name: str, language: str) -> Path | None:
    """The file ``sound:NAME`` plays: ``sounds_dir/<language>/NAME.wav``, else under ``en``.

    An absolute NAME is a file path (with or without ``.wav``), as Asterisk
    accepts it. None when there is no such file.
    """
    if name.startswith("/"):
        candidates = [Path(name + ".wav"), Path(name)]
    elif sounds_dir is not None:
        candidates = [sounds_dir / lang / f"{name}.wav" for lang in (language, "en")]
    else:
        candidates = []
    return next((path for path in candidates if path.is_file()), None)


def sound_duration(sounds_dir: Path | None, name: str, language: str) -> float | None:
    """Length of ``sound:NAME`` in seconds, or None when no such file can be played.

    The file is :func:`sound_file`'s, else one of the built-in trace sounds.
    """
    path = sound_file(sounds_dir, name, language)
    if path is not None:
        import soundfile

        try:
            info = soundfile.info(str(path))
        except (OSError, RuntimeError):  # unreadable: Asterisk cannot play it either
            return None
        return float(info.frames) / float(info.samplerate)
    return None if name.startswith("/") else BUILTIN_SOUNDS.get(name)


def media_duration(sounds_dir: Path | None, uri: str, language: str) -> float | str | None:
    """Seconds a media URI plays, None when missing, ``"never"`` for unknown schemes."""
    scheme, _, rest = uri.partition(":")
    if scheme == "sound":
        return sound_duration(sounds_dir, rest, language)
    if scheme in ("digits", "characters"):
        return 0.6 * len(rest) if rest else None
    if scheme == "number":
        return 0.8 * len(rest.lstrip("-")) if rest.lstrip("-").isdigit() else None
    if scheme == "tone":
        return 3600.0
    if scheme == "recording":
        return None
    return "never"


def builtin_dialplans() -> dict[tuple[str, str], list[DialplanStep]]:
    """The dialplan of the trace PBX (README "Setup")."""
    return {
        ("dialplan-test", "talk"): [
            DialplanStep("NoOp", "dialplan-test"),
            DialplanStep("Answer"),
            DialplanStep("Playback", "tt-weasels", 2.95),
            DialplanStep("Playback", "hello-world", 1.40),
            DialplanStep("Wait", "3", 3.0),
            DialplanStep("Hangup"),
        ],
        ("lab", "echo"): [DialplanStep("Answer"), DialplanStep("Echo")],
    }
