"""The ``[recording]`` pause keys and the ``[control]`` section.

Read by :func:`callrec.config.load_config` (each problem as ``file:key``), in a
module of its own so the loader stays small::

    [recording]
    pause_code = "*1"       # the agent's digits that pause the recording ("" off)
    resume_code = "*2"      # and resume it ("" off; the same code toggles)
    auto_resume = 0         # seconds after which a pause ends by itself (0 never)
    pause_tone = "tone:!660/150,!0/60,!440/200"   # what the agent hears ("" nothing)
    resume_tone = "sound:beep"                     # or a prompt name

    [control]
    socket = "/run/callrec/control.sock"   # callrec calls list|pause|resume ("" none)

A tone is an ARI ``tone:`` media: an indication name (``tone:ring``) or a
list of ``[!]freq[+freq]/ms`` items as Asterisk's indications.conf writes
them. Asterisk plays a tone until it is stopped; the app stops it after the
milliseconds its items add up to (:func:`tone_seconds`).
"""

from __future__ import annotations

import re
from typing import Any

from callrec.config_checks import Reader, kind_of, path_text
from callrec.config_model import ControlConfig, PauseConfig
from callrec.prompts.names import SOUND

KEYS = ("pause_code", "resume_code", "auto_resume", "pause_tone", "resume_tone")
CONTROL_KEYS = ("socket",)

# What ChannelDtmfReceived reports: 0-9, *, #, A-D.
_CODE = re.compile(r"[0-9*#A-D]{1,8}")
_ITEM = r"!?\d{1,5}(?:[+*]\d{1,5})?(?:/\d{1,5})?"
_TONE = re.compile(rf"tone:(?:[a-z]{{1,32}}|{_ITEM}(?:,{_ITEM}){{0,15}})")
_MILLISECONDS = re.compile(r"/(\d+)")
# sockaddr_un holds 108 bytes, the final NUL included.
MAX_SOCKET_PATH = 107
# A tone without durations (an indication name) is stopped after this long.
TONE_SECONDS = 1.0
_TONE_HINT = 'e.g. "tone:!660/150,!0/60,!440/200", "sound:beep", a prompt name, or "" for none'


def read_pause(r: Reader, t: dict[str, Any]) -> PauseConfig:
    """The pause keys of ``[recording]`` (its unknown keys are checked by the caller)."""
    d = PauseConfig()
    return PauseConfig(
        pause_code=r.take(t, ("recording", "pause_code"), d.pause_code, _code),
        resume_code=r.take(t, ("recording", "resume_code"), d.resume_code, _code),
        auto_resume=r.take(t, ("recording", "auto_resume"), d.auto_resume, _seconds),
        pause_tone=r.take(t, ("recording", "pause_tone"), d.pause_tone, _tone),
        resume_tone=r.take(t, ("recording", "resume_tone"), d.resume_tone, _tone),
    )


def read_control(r: Reader, t: dict[str, Any]) -> ControlConfig:
    """``[control]``: a relative socket path is taken against the config's folder."""
    r.unknown(t, CONTROL_KEYS, "control")
    raw = r.take(t, ("control", "socket"), str(ControlConfig().socket), _socket_path)
    if not raw:
        return ControlConfig(socket=None)
    path = r.path_value(raw)
    if len(bytes(path)) > MAX_SOCKET_PATH:
        r.problem(
            "control.socket",
            f"is {len(bytes(path))} bytes long; a Unix socket path has at most {MAX_SOCKET_PATH}",
            "e.g. /run/callrec/control.sock",
        )
        return ControlConfig()
    return ControlConfig(socket=path)


def _code(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and (value == "" or _CODE.fullmatch(value)):
        return value, "", ""
    shown = repr(value)[:40] if isinstance(value, str) else kind_of(value)
    message = f"must be 1 to 8 of the digits 0-9 * # A-D, or empty, not {shown}"
    return None, message, 'e.g. "*1"; "" turns the code off'


def _seconds(value: Any) -> tuple[float | None, str, str]:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 86_400:
        shown = value if isinstance(value, int | float) else kind_of(value)
        return None, f"must be seconds from 0 to 86400, not {shown}", "0 never resumes by itself"
    return float(value), "", ""


def _tone(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and (value == "" or agent_media(value)):
        return value, "", ""
    shown = repr(value)[:60] if isinstance(value, str) else kind_of(value)
    return None, f"is not a tone, sound or prompt name: {shown}", _TONE_HINT


def _socket_path(value: Any) -> tuple[str | None, str, str]:
    if value == "":
        return "", "", ""
    return path_text(value)


def agent_media(value: str) -> str:
    """The ARI media of a ``pause_tone``/``resume_tone`` value ("" when it is none or bad)."""
    if _TONE.fullmatch(value):
        return value
    name = value.removeprefix("sound:")
    return f"sound:{name}" if SOUND.fullmatch(name) else ""


def tone_seconds(media: str) -> float | None:
    """How long a ``tone:`` media plays before it must be stopped; None for a sound
    (it ends by itself)."""
    if not media.startswith("tone:"):
        return None
    milliseconds = sum(int(ms) for ms in _MILLISECONDS.findall(media))
    return milliseconds / 1000 if milliseconds else TONE_SECONDS
