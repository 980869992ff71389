"""The callrec configuration: one TOML file into frozen, typed dataclasses.

``load_config`` reads the file, checks every key and raises
:class:`ConfigProblems` listing every problem found (not only the first), each
as ``file:key: message (hint: ...)`` with dotted keys such as
``consent.grace`` or ``destinations."100".endpoint``. Unknown keys are
problems too, so a typo never silently falls back to a default.

Relative paths resolve against the folder holding the config file. The ARI
password may come from the environment (``CALLREC_ARI_PASSWORD`` wins over the
file); it is kept out of every ``repr``.

``config/callrec.toml`` is the commented reference of every key.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, get_args
from urllib.parse import urlsplit

from callrec.errors import CallrecError, ConfigError, KeyError_
from callrec.evidence import load_pseudonym_key

if TYPE_CHECKING:
    from callrec.crypto.keys import PublicKey

PASSWORD_ENV = "CALLREC_ARI_PASSWORD"  # noqa: S105 (a variable name, not a password)

AudioFormat = Literal["ulaw", "alaw", "slin16"]
FailurePolicy = Literal["best-effort", "strict"]
ConsentMode = Literal["implied", "explicit"]
DeclineAction = Literal["continue", "hangup"]
PromptKind = Literal["disclosure", "not_available", "recording_unavailable"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

PROMPT_KINDS: tuple[PromptKind, ...] = get_args(PromptKind)
DIGITS = frozenset("0123456789*#")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:_[A-Za-z]{2,4})?$")
# Sound names become paths under sounds_dir: no "..", no absolute names.
_SOUND = re.compile(r"^[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*$")
_ENDPOINT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[^\s,()]+$")
_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_DEFAULT_RECIPIENTS: tuple[str, ...] = ("/etc/callrec/dpo.pub",)
_PSEUDONYM_HINT = "create one with: head -c32 /dev/urandom > FILE && chmod 600 FILE"


class ConfigProblems(CallrecError):
    """The config has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"{len(problems)} configuration problem(s):\n{lines}")


@dataclass(frozen=True)
class AriConfig:
    url: str = "http://127.0.0.1:8088"
    user: str = "callrec"
    password: str = field(default="", repr=False)
    app: str = "callrec"
    password_from_env: bool = False


@dataclass(frozen=True)
class RecordingConfig:
    spool: Path = Path("/var/spool/callrec")
    recipients: tuple[Path, ...] = (Path("/etc/callrec/dpo.pub"),)
    format: AudioFormat = "ulaw"
    fsync_interval: float = 1.0
    on_failure: FailurePolicy = "best-effort"
    media_host: str = "127.0.0.1"
    media_port: int = 0


@dataclass(frozen=True)
class PrivacyConfig:
    pseudonym_key: Path = Path("/etc/callrec/pseudonym.key")
    audit_log: Path = Path("/var/log/callrec/audit.jsonl")


@dataclass(frozen=True)
class ConsentConfig:
    mode: ConsentMode = "implied"
    grace: float = 2.0
    optout_digit: str = "2"
    accept_digit: str = "1"
    timeout: float = 10.0
    on_decline: DeclineAction = "continue"


@dataclass(frozen=True)
class PromptNames:
    disclosure: str = "callrec/disclosure"
    not_available: str = "callrec/not-available"
    recording_unavailable: str = "callrec/recording-unavailable"

    def name(self, kind: PromptKind) -> str:
        return cast(str, getattr(self, kind))


@dataclass(frozen=True)
class PromptRef:
    """One prompt to play: ``sound:<name>`` in ``language``; ``path_wav`` is hashed."""

    name: str
    language: str
    path_wav: Path

    @property
    def media(self) -> str:
        return f"sound:{self.name}"


@dataclass(frozen=True)
class PromptsConfig:
    sounds_dir: Path = Path("/var/lib/asterisk/sounds")
    languages: tuple[str, ...] = ("en",)
    default_language: str = "en"
    names: PromptNames = PromptNames()
    numbers: Mapping[str, PromptNames] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Destination:
    endpoint: str
    timeout: float = 30.0


@dataclass(frozen=True)
class AgiConfig:
    host: str = "127.0.0.1"
    port: int = 4573
    record_after_consent: bool = False


@dataclass(frozen=True)
class LoggingConfig:
    level: LogLevel = "INFO"


@dataclass(frozen=True)
class Config:
    path: Path = Path("callrec.toml")
    ari: AriConfig = AriConfig()
    recording: RecordingConfig = RecordingConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    consent: ConsentConfig = ConsentConfig()
    prompts: PromptsConfig = PromptsConfig()
    destinations: Mapping[str, Destination] = field(default_factory=lambda: MappingProxyType({}))
    agi: AgiConfig = AgiConfig()
    logging: LoggingConfig = LoggingConfig()

    @property
    def ari_password(self) -> str:
        """The ARI password (the environment's when it was set at load time)."""
        return self.ari.password

    def prompt_for(self, number: str, language: str, kind: PromptKind) -> PromptRef:
        """The prompt of ``kind`` for a dialled number and a channel language.

        A language that is not configured falls back to ``default_language``,
        so a caller-controlled channel language never reaches a path.
        """
        lang = language if language in self.prompts.languages else self.prompts.default_language
        names = self.prompts.numbers.get(number, self.prompts.names)
        name = names.name(kind)
        return PromptRef(name, lang, self.prompts.sounds_dir / lang / f"{name}.wav")

    def recipient_keys(self) -> list[PublicKey]:
        """The recipients' public keys; raises ``KeyError_`` naming a bad file."""
        from callrec.crypto.keys import PublicKey

        return [PublicKey.load(path) for path in self.recording.recipients]

    def destination_for(self, number: str) -> Destination | None:
        """The destination for a dialled number, else ``default``, else None."""
        return self.destinations.get(number, self.destinations.get("default"))


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and check ``path``; raise :class:`ConfigProblems` listing every problem."""
    config, problems = _load(Path(path), os.environ if env is None else env)
    if problems or config is None:
        raise ConfigProblems(problems)
    return config


def check_config(path: Path, *, env: Mapping[str, str] | None = None) -> list[ConfigError]:
    """Every problem of the config at ``path`` (an empty list: it is fine)."""
    return _load(Path(path), os.environ if env is None else env)[1]


# --- reading -------------------------------------------------------------

T = TypeVar("T")


def dotted(*parts: str) -> str:
    """A TOML dotted key, quoting the parts that are not bare keys."""
    return ".".join(p if _BARE_KEY.match(p) else '"' + p.replace('"', '\\"') + '"' for p in parts)


class _Reader:
    """Collects problems while taking typed values out of TOML tables."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent
        self.problems: list[ConfigError] = []

    def problem(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append(ConfigError(str(self.path), key, message, hint))

    def table(self, data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
        value = data.get(keys[-1], {})
        if isinstance(value, dict):
            return value
        self.problem(dotted(*keys), f"must be a table, not {_kind(value)}")
        return {}

    def unknown(self, table: Mapping[str, Any], allowed: tuple[str, ...], *where: str) -> None:
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]}?" if close else "known keys: " + ", ".join(allowed)
            self.problem(dotted(*where, key), "unknown key", hint)

    def take(
        self,
        table: Mapping[str, Any],
        key: tuple[str, ...],
        default: T,
        check: Callable[[Any], tuple[T | None, str, str]],
    ) -> T:
        if key[-1] not in table:
            return default
        value, message, hint = check(table[key[-1]])
        if value is None:
            self.problem(dotted(*key), message, hint)
            return default
        return value

    def choice(
        self, table: Mapping[str, Any], key: tuple[str, ...], default: str, literal: object
    ) -> Any:
        """A string out of a ``Literal`` type's values (typed by the caller's field)."""
        return self.take(table, key, default, _choice(get_args(literal)))

    def path_value(self, raw: str) -> Path:
        p = Path(raw).expanduser()
        return p if p.is_absolute() else self.base / p


def _kind(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _string(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and value:
        return value, "", ""
    if isinstance(value, str):
        return None, "must not be empty", ""
    return None, f"must be a string, not {_kind(value)}", 'write it in quotes: key = "value"'


def _number(low: float, *, above: bool = False) -> Callable[[Any], tuple[float | None, str, str]]:
    def check(value: Any) -> tuple[float | None, str, str]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"must be a number, not {_kind(value)}", "e.g. 2.0"
        ok = value > low if above else value >= low
        if not ok:
            return None, f"must be {'>' if above else '>='} {low:g}, not {value:g}", ""
        return float(value), "", ""

    return check


def _port(value: Any) -> tuple[int | None, str, str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"must be an integer, not {_kind(value)}", "0 picks any free port"
    if not 0 <= value <= 65535:
        return None, f"must be a port 0..65535, not {value}", ""
    return value, "", ""


def _boolean(value: Any) -> tuple[bool | None, str, str]:
    if isinstance(value, bool):
        return value, "", ""
    return None, f"must be true or false, not {_kind(value)}", "TOML booleans are lower case"


def _choice(choices: tuple[str, ...]) -> Callable[[Any], tuple[str | None, str, str]]:
    def check(value: Any) -> tuple[str | None, str, str]:
        if isinstance(value, str) and value in choices:
            return value, "", ""
        shown = repr(value) if isinstance(value, str) else _kind(value)
        return None, f"must be one of {', '.join(choices)}, not {shown}", ""

    return check


def _digit(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and len(value) == 1 and value in DIGITS:
        return value, "", ""
    shown = repr(value) if isinstance(value, str) else _kind(value)
    return None, f"must be one DTMF digit 0-9, * or #, not {shown}", 'e.g. "2" (in quotes)'


def _sound(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and _SOUND.match(value):
        return value, "", ""
    shown = repr(value) if isinstance(value, str) else _kind(value)
    hint = 'a sound name without extension, like "callrec/disclosure"'
    return None, f"is not a sound name: {shown}", hint


def _language(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and _LANGUAGE.match(value):
        return value, "", ""
    shown = repr(value) if isinstance(value, str) else _kind(value)
    return None, f"is not a language code: {shown}", 'like "en", "de" or "pt_BR"'


def _string_list(
    item: Callable[[Any], tuple[str | None, str, str]],
) -> Callable[[Any], tuple[tuple[str, ...] | None, str, str]]:
    def check(value: Any) -> tuple[tuple[str, ...] | None, str, str]:
        if not isinstance(value, list):
            return None, f"must be a list, not {_kind(value)}", 'e.g. ["a", "b"]'
        out = []
        for i, v in enumerate(value):
            ok, message, hint = item(v)
            if ok is None:
                return None, f"item {i} {message}", hint
            out.append(ok)
        return tuple(out), "", ""

    return check


# --- sections ------------------------------------------------------------

_SECTIONS = (
    "ari",
    "recording",
    "privacy",
    "consent",
    "prompts",
    "destinations",
    "agi",
    "logging",
)


def _load(path: Path, env: Mapping[str, str]) -> tuple[Config | None, list[ConfigError]]:
    r = _Reader(path)
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        r.problem("(file)", "file does not exist", "copy config/callrec.toml and edit it")
        return None, r.problems
    except OSError as exc:
        r.problem("(file)", f"cannot read: {exc.strerror}")
        return None, r.problems
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"line (\d+)", str(exc))
        key = f"line {where.group(1)}" if where else "(syntax)"
        r.problem(key, f"not valid TOML: {exc}", "see config/callrec.toml for the syntax")
        return None, r.problems
    r.unknown(data, _SECTIONS)
    config = Config(
        path=path,
        ari=_ari(r, r.table(data, "ari"), env),
        recording=_recording(r, r.table(data, "recording")),
        privacy=_privacy(r, r.table(data, "privacy")),
        consent=_consent(r, r.table(data, "consent")),
        prompts=_prompts(r, r.table(data, "prompts")),
        destinations=_destinations(r, r.table(data, "destinations")),
        agi=_agi(r, r.table(data, "agi")),
        logging=_logging(r, r.table(data, "logging")),
    )
    _check_files(r, config)
    return config, r.problems


def _ari(r: _Reader, t: dict[str, Any], env: Mapping[str, str]) -> AriConfig:
    r.unknown(t, ("url", "user", "password", "app"), "ari")
    url = r.take(t, ("ari", "url"), AriConfig.url, _string).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        r.problem(
            "ari.url",
            f"must be an http:// or https:// URL, not {url!r}",
            "e.g. http://127.0.0.1:8088",
        )
    elif parts.path.rstrip("/").endswith("/ari"):
        r.problem("ari.url", "must not end with /ari", "callrec adds /ari itself")
    password = r.take(t, ("ari", "password"), "", _string_or_empty)
    from_env = bool(env.get(PASSWORD_ENV))
    if from_env:
        password = env[PASSWORD_ENV]
    if not password:
        r.problem(
            "ari.password",
            "no ARI password",
            f"set ari.password or the environment variable {PASSWORD_ENV}",
        )
    return AriConfig(
        url=url,
        user=r.take(t, ("ari", "user"), AriConfig.user, _string),
        password=password,
        app=r.take(t, ("ari", "app"), AriConfig.app, _string),
        password_from_env=from_env,
    )


def _string_or_empty(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str):
        return value, "", ""
    return None, f"must be a string, not {_kind(value)}", 'write it in quotes: key = "value"'


def _recording(r: _Reader, t: dict[str, Any]) -> RecordingConfig:
    keys = (
        "spool",
        "recipients",
        "format",
        "fsync_interval",
        "on_failure",
        "media_host",
        "media_port",
    )
    r.unknown(t, keys, "recording")
    d = RecordingConfig()
    recipients = r.take(t, ("recording", "recipients"), _DEFAULT_RECIPIENTS, _string_list(_string))
    if not recipients:
        r.problem(
            "recording.recipients",
            "no recipient public key",
            "create a key pair with `callrec keygen` and list the public key file",
        )
    host = r.take(t, ("recording", "media_host"), d.media_host, _string)
    if not _is_host(host):
        r.problem(
            "recording.media_host",
            f"is not an IP address or host name: {host!r}",
            "e.g. 127.0.0.1",
        )
    return RecordingConfig(
        spool=r.path_value(r.take(t, ("recording", "spool"), str(d.spool), _string)),
        recipients=tuple(r.path_value(p) for p in recipients),
        format=r.choice(t, ("recording", "format"), d.format, AudioFormat),
        fsync_interval=r.take(
            t, ("recording", "fsync_interval"), d.fsync_interval, _number(0.0, above=True)
        ),
        on_failure=r.choice(t, ("recording", "on_failure"), d.on_failure, FailurePolicy),
        media_host=host,
        media_port=r.take(t, ("recording", "media_port"), d.media_port, _port),
    )


def _is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST.match(host))
    return True


def _privacy(r: _Reader, t: dict[str, Any]) -> PrivacyConfig:
    r.unknown(t, ("pseudonym_key", "audit_log"), "privacy")
    d = PrivacyConfig()
    key = r.take(t, ("privacy", "pseudonym_key"), str(d.pseudonym_key), _string)
    audit = r.take(t, ("privacy", "audit_log"), str(d.audit_log), _string)
    return PrivacyConfig(pseudonym_key=r.path_value(key), audit_log=r.path_value(audit))


def _consent(r: _Reader, t: dict[str, Any]) -> ConsentConfig:
    keys = ("mode", "grace", "optout_digit", "accept_digit", "timeout", "on_decline")
    r.unknown(t, keys, "consent")
    d = ConsentConfig()
    c = ConsentConfig(
        mode=r.choice(t, ("consent", "mode"), d.mode, ConsentMode),
        grace=r.take(t, ("consent", "grace"), d.grace, _number(0.0)),
        optout_digit=r.take(t, ("consent", "optout_digit"), d.optout_digit, _digit),
        accept_digit=r.take(t, ("consent", "accept_digit"), d.accept_digit, _digit),
        timeout=r.take(t, ("consent", "timeout"), d.timeout, _number(0.0, above=True)),
        on_decline=r.choice(t, ("consent", "on_decline"), d.on_decline, DeclineAction),
    )
    if c.optout_digit == c.accept_digit:
        key = "consent.accept_digit" if "accept_digit" in t else "consent.optout_digit"
        r.problem(
            key,
            f"opt-out and accept digit are both {c.optout_digit!r}",
            "choose two different digits",
        )
    return c


def _prompt_names(r: _Reader, t: dict[str, Any], base: PromptNames, *where: str) -> PromptNames:
    return PromptNames(
        disclosure=r.take(t, (*where, "disclosure"), base.disclosure, _sound),
        not_available=r.take(t, (*where, "not_available"), base.not_available, _sound),
        recording_unavailable=r.take(
            t, (*where, "recording_unavailable"), base.recording_unavailable, _sound
        ),
    )


def _prompts(r: _Reader, t: dict[str, Any]) -> PromptsConfig:
    keys = ("sounds_dir", "languages", "default_language", *PROMPT_KINDS, "numbers")
    r.unknown(t, keys, "prompts")
    d = PromptsConfig()
    languages = r.take(t, ("prompts", "languages"), d.languages, _string_list(_language))
    if not languages:
        r.problem("prompts.languages", "no language", 'e.g. ["en"]')
        languages = d.languages
    default = r.take(t, ("prompts", "default_language"), languages[0], _language)
    if default not in languages:
        r.problem(
            "prompts.default_language",
            f"{default!r} is not in prompts.languages",
            "add it to the list",
        )
    names = _prompt_names(r, t, PromptNames(), "prompts")
    numbers: dict[str, PromptNames] = {}
    for number, sub in r.table(t, "prompts", "numbers").items():
        if not isinstance(sub, dict):
            r.problem(dotted("prompts", "numbers", number), f"must be a table, not {_kind(sub)}")
            continue
        r.unknown(sub, PROMPT_KINDS, "prompts", "numbers", number)
        numbers[number] = _prompt_names(r, sub, names, "prompts", "numbers", number)
    sounds = r.take(t, ("prompts", "sounds_dir"), str(d.sounds_dir), _string)
    return PromptsConfig(
        sounds_dir=r.path_value(sounds),
        languages=languages,
        default_language=default,
        names=names,
        numbers=MappingProxyType(numbers),
    )


def _destinations(r: _Reader, t: dict[str, Any]) -> Mapping[str, Destination]:
    out: dict[str, Destination] = {}
    for number, sub in t.items():
        where = ("destinations", number)
        if not isinstance(sub, dict):
            r.problem(
                dotted(*where),
                f"must be a table, not {_kind(sub)}",
                '{ endpoint = "PJSIP/agent", timeout = 30 }',
            )
            continue
        r.unknown(sub, ("endpoint", "timeout"), *where)
        endpoint = r.take(sub, (*where, "endpoint"), "", _string)
        if "endpoint" not in sub:
            r.problem(dotted(*where, "endpoint"), "missing", 'e.g. endpoint = "PJSIP/agent"')
        elif endpoint and not _ENDPOINT.match(endpoint):
            r.problem(
                dotted(*where, "endpoint"),
                f"is not a dial string: {endpoint!r}",
                "like PJSIP/agent or Local/100@internal",
            )
        timeout = r.take(sub, (*where, "timeout"), 30.0, _number(0.0, above=True))
        out[number] = Destination(endpoint=endpoint, timeout=timeout)
    return MappingProxyType(out)


def _agi(r: _Reader, t: dict[str, Any]) -> AgiConfig:
    r.unknown(t, ("listen", "record_after_consent"), "agi")
    d = AgiConfig()
    listen = r.take(t, ("agi", "listen"), f"{d.host}:{d.port}", _string)
    m = re.match(r"^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d{1,5})$", listen)
    host, port = d.host, d.port
    if m is None or int(m.group(3)) > 65535 or not _is_host(m.group(1) or m.group(2)):
        r.problem(
            "agi.listen", f"must be host:port, not {listen!r}", "e.g. 127.0.0.1:4573 or [::1]:4573"
        )
    else:
        host, port = m.group(1) or m.group(2), int(m.group(3))
    record = r.take(t, ("agi", "record_after_consent"), d.record_after_consent, _boolean)
    return AgiConfig(host=host, port=port, record_after_consent=record)


def _logging(r: _Reader, t: dict[str, Any]) -> LoggingConfig:
    r.unknown(t, ("level",), "logging")
    level = r.take(t, ("logging", "level"), "INFO", _string).upper()
    if level not in get_args(LogLevel):
        r.problem(
            "logging.level",
            f"must be one of {', '.join(get_args(LogLevel))}",
            "INFO is the usual choice",
        )
        level = "INFO"
    return LoggingConfig(level=cast(LogLevel, level))


# --- files the config points at ------------------------------------------


def _check_files(r: _Reader, c: Config) -> None:
    for i, path in enumerate(c.recording.recipients):
        _check_recipient(r, f"recording.recipients[{i}]", path)
    _check_folder(r, "recording.spool", c.recording.spool)
    _check_pseudonym_key(r, c.privacy.pseudonym_key)
    audit = c.privacy.audit_log
    if audit.is_dir():
        r.problem("privacy.audit_log", f"{audit} is a folder", "name a file inside it")
    else:
        _check_folder(r, "privacy.audit_log", audit.parent)
    if not c.prompts.sounds_dir.is_dir():
        r.problem(
            "prompts.sounds_dir",
            f"{c.prompts.sounds_dir} is not a folder",
            "point it at Asterisk's sounds folder",
        )
        return
    _check_prompts(r, c)


def _check_recipient(r: _Reader, key: str, path: Path) -> None:
    if not path.is_file():
        r.problem(key, f"{path}: file does not exist", "create it with `callrec keygen`")
        return
    try:
        # Imported here so the config still loads before the crypto package lands.
        from callrec.crypto.keys import PublicKey
    except ImportError:
        return
    try:
        PublicKey.load(path)
    except KeyError_ as exc:
        r.problem(
            key,
            f"not a callrec public key: {exc.message}",
            "use the .pub file written by `callrec keygen`",
        )


def _check_folder(r: _Reader, key: str, path: Path) -> None:
    if path.exists():
        if not path.is_dir():
            r.problem(key, f"{path} is a file, not a folder", "point it at a folder")
        elif not os.access(path, os.W_OK | os.X_OK):
            r.problem(key, f"{path}: permission denied", "make it writable for callrec")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        r.problem(key, f"{path} cannot be created: {parent} is a file, not a folder")
    elif not os.access(parent, os.W_OK | os.X_OK):
        r.problem(
            key,
            f"{path} cannot be created: {parent}: permission denied",
            f"create {path} for the callrec user",
        )


def _check_pseudonym_key(r: _Reader, path: Path) -> None:
    try:
        load_pseudonym_key(path)
    except KeyError_ as exc:
        r.problem("privacy.pseudonym_key", f"{path}: {exc.message}", _PSEUDONYM_HINT)


def _check_prompts(r: _Reader, c: Config) -> None:
    numbers = ["", *c.prompts.numbers]
    seen: set[Path] = set()
    for number in numbers:
        for lang in c.prompts.languages:
            for kind in PROMPT_KINDS:
                ref = c.prompt_for(number, lang, kind)
                if ref.path_wav in seen:
                    continue
                seen.add(ref.path_wav)
                if not ref.path_wav.is_file():
                    key = (
                        dotted("prompts", kind)
                        if not number
                        else dotted("prompts", "numbers", number, kind)
                    )
                    r.problem(
                        key,
                        f"{ref.path_wav}: file does not exist",
                        f"install the {lang} prompt as 8 kHz 16-bit WAV",
                    )
