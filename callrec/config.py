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

import os
import re
import tomllib
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast, get_args
from urllib.parse import SplitResult, urlsplit

from callrec.catalog.settings import read_catalog
from callrec.config_channels import KEYS as CHANNEL_KEYS
from callrec.config_channels import read_channels
from callrec.config_checks import (
    Reader,
    bool_value,
    digit_value,
    dotted,
    host_port,
    is_host,
    kind_of,
    language_value,
    number_value,
    path_text,
    port_value,
    sound_value,
    string_list,
    string_or_empty,
    string_value,
)
from callrec.config_checks import (
    check_files as check_config_files,
)
from callrec.config_model import (
    PROMPT_KINDS,
    AgiConfig,
    AriConfig,
    AuditConfig,
    Config,
    ConsentConfig,
    Destination,
    LoggingConfig,
    LogLevel,
    MetricsConfig,
    PrivacyConfig,
    PromptKind,
    PromptNames,
    PromptsConfig,
    RecordingConfig,
    RetentionConfig,
)
from callrec.config_pause import KEYS as PAUSE_KEYS
from callrec.config_pause import read_control, read_pause
from callrec.consent import ConsentMode, DeclineAction
from callrec.dpo.settings import read_audit, read_retention
from callrec.errors import CallrecError, ConfigError
from callrec.failure_policy import FailurePolicy
from callrec.logutil import safe
from callrec.media.codecs import MediaFormatName
from callrec.spool import os_reason
from callrec.user_files import read_bounded

# The typed config is defined in callrec.config_model; this module is where
# callers get it, with the loader.
__all__ = [
    "PASSWORD_ENV",
    "PROMPT_KINDS",
    "SECTIONS",
    "AgiConfig",
    "AriConfig",
    "AuditConfig",
    "Config",
    "ConfigProblems",
    "ConsentConfig",
    "Destination",
    "LogLevel",
    "LoggingConfig",
    "MetricsConfig",
    "PrivacyConfig",
    "PromptKind",
    "PromptNames",
    "PromptsConfig",
    "RecordingConfig",
    "RetentionConfig",
    "check_config",
    "load_config",
]

PASSWORD_ENV = "CALLREC_ARI_PASSWORD"  # noqa: S105 (a variable name, not a password)

_ENDPOINT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*/[^\s,()]+$")
# A config is a page of text; more is not a config (and /dev/zero never ends).
MAX_CONFIG_BYTES = 1 << 20
_DEFAULT_RECIPIENTS: tuple[str, ...] = ("/etc/callrec/dpo.pub",)


class ConfigProblems(CallrecError):
    """The config has problems; ``problems`` lists every one of them."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        lines = "\n".join(str(p) for p in problems)
        super().__init__(f"{len(problems)} configuration problem(s):\n{lines}")


SECTIONS: tuple[str, ...] = (
    "ari",
    "recording",
    "privacy",
    "consent",
    "prompts",
    "destinations",
    "agi",
    "logging",
    "metrics",
    "catalog",
    "audit",
    "retention",
    "control",
)


def load_config(
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    sections: Collection[str] = SECTIONS,
    check_files: bool = True,
    need_ari: bool = True,
) -> Config:
    """Read and check ``path``; raise :class:`ConfigProblems` listing every problem.

    Only ``sections`` are read and checked; the others keep their defaults
    and their problems are not raised (nor unknown top-level tables, unless
    every section was asked for).
    ``prompts check`` reads just ``("prompts",)`` so it works before the
    rest of the config is usable. ``check_files=False`` skips the files the
    config points at (keys, folders, prompt WAVs).

    ``need_ari=False`` (the classic AGI script, which never talks to ARI) is
    every section but ``ari``: the ARI password may then be left out, so it
    need not be readable by the Asterisk user that runs agi-bin scripts.
    """
    wanted = tuple(name for name in sections if need_ari or name != "ari")
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown config sections {unknown}")
    config, problems = _load(
        Path(path),
        os.environ if env is None else env,
        wanted,
        check_files=check_files,
        whole_file=set(sections) >= set(SECTIONS),
    )
    if problems or config is None:
        raise ConfigProblems(problems)
    return config


def check_config(path: Path, *, env: Mapping[str, str] | None = None) -> list[ConfigError]:
    """Every problem of the config at ``path`` (an empty list: it is fine)."""
    return _load(Path(path), os.environ if env is None else env, SECTIONS)[1]


# --- sections ------------------------------------------------------------


def _load(
    path: Path,
    env: Mapping[str, str],
    sections: tuple[str, ...],
    *,
    check_files: bool = True,
    whole_file: bool = True,
) -> tuple[Config | None, list[ConfigError]]:
    r = Reader(path)
    data = _read_toml(r, path)
    if data is None:
        return None, r.problems
    if whole_file:  # a typo in a table name is not the problem of any one section
        r.unknown(data, SECTIONS)
    builders: dict[str, Callable[[dict[str, Any]], object]] = {
        "ari": lambda t: _ari(r, t, env),
        "recording": lambda t: _recording(r, t),
        "privacy": lambda t: _privacy(r, t),
        "consent": lambda t: _consent(r, t),
        "prompts": lambda t: _prompts(r, t),
        "destinations": lambda t: _destinations(r, t),
        "agi": lambda t: _agi(r, t),
        "logging": lambda t: _logging(r, t),
        "metrics": lambda t: _metrics(r, t),
        "catalog": lambda t: read_catalog(r, t),
        "audit": lambda t: read_audit(r, t),
        "retention": lambda t: read_retention(r, t),
        "control": lambda t: read_control(r, t),
    }
    parts: dict[str, Any] = {
        name: builders[name](r.table(data, name)) for name in SECTIONS if name in sections
    }
    config = Config(path=path, **parts)
    if check_files:
        check_config_files(r, config, sections)
    return config, r.problems


def _read_toml(r: Reader, path: Path) -> dict[str, Any] | None:
    """The parsed file, or None with the reason recorded as a problem."""
    try:
        return tomllib.loads(read_bounded(path, MAX_CONFIG_BYTES).decode("utf-8"))
    except FileNotFoundError:
        r.problem("(file)", "file does not exist", "write one: callrec config template > FILE")
    except OSError as exc:
        r.problem("(file)", f"cannot read: {os_reason(exc)}")
    except UnicodeDecodeError as exc:
        r.problem("(file)", f"not UTF-8 text (byte {exc.start})", "save the file as UTF-8")
    except tomllib.TOMLDecodeError as exc:
        where = re.search(r"line (\d+)", str(exc))
        key = f"line {where.group(1)}" if where else "(syntax)"
        r.problem(key, f"not valid TOML: {exc}", "see `callrec config template` for the syntax")
    except ValueError:  # Python's limit on integer digits (4300)
        r.problem("(syntax)", "a number has more digits than callrec reads", "e.g. 2.0")
    except RecursionError:
        r.problem("(syntax)", "arrays or tables nested too deeply", "no key needs nesting")
    return None


def _redacted(url: str) -> str:
    """``url`` without anything that may be credentials (``//user:pass@``)."""
    return re.sub(r"//[^/]*@", "//***@", url)


def _has_valid_port(parts: SplitResult) -> bool:
    """No port (the scheme's own) or one in 1..65535; urlsplit raises on the rest."""
    try:
        return parts.port != 0
    except ValueError:
        return False


def _ari(r: Reader, t: dict[str, Any], env: Mapping[str, str]) -> AriConfig:
    r.unknown(t, ("url", "user", "password", "app"), "ari")
    url = r.take(t, ("ari", "url"), AriConfig.url, string_value).rstrip("/")
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
    except ValueError:
        parts, hostname = urlsplit(""), None
    if parts.username is not None or parts.password is not None:
        # Never echo it: the text holds a secret, and it would be logged.
        r.problem(
            "ari.url",
            "must not contain a user or password",
            f"use ari.user and ari.password (or {PASSWORD_ENV})",
        )
    elif parts.scheme not in ("http", "https") or not hostname:
        r.problem(
            "ari.url",
            f"must be an http:// or https:// URL, not {safe(_redacted(url), 60)!r}",
            "e.g. http://127.0.0.1:8088",
        )
    elif not _has_valid_port(parts):
        r.problem("ari.url", "has a port outside 1..65535", "e.g. http://127.0.0.1:8088")
    elif parts.path.rstrip("/").endswith("/ari"):
        r.problem("ari.url", "must not end with /ari", "callrec adds /ari itself")
    password = r.take(t, ("ari", "password"), "", string_or_empty)
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
        user=r.take(t, ("ari", "user"), AriConfig.user, string_value),
        password=password,
        app=r.take(t, ("ari", "app"), AriConfig.app, string_value),
        password_from_env=from_env,
    )


def _recording(r: Reader, t: dict[str, Any]) -> RecordingConfig:
    keys = (
        "spool",
        "recipients",
        "format",
        "fsync_interval",
        "on_failure",
        "media_host",
        "media_port",
        "signing_key",
        *CHANNEL_KEYS,
        *PAUSE_KEYS,
    )
    r.unknown(t, keys, "recording")
    d = RecordingConfig()
    recipients = r.take(
        t, ("recording", "recipients"), _DEFAULT_RECIPIENTS, string_list(path_text)
    )
    if not recipients:
        r.problem(
            "recording.recipients",
            "no recipient public key",
            "create a key pair with `callrec keygen` and list the public key file",
        )
    host = r.take(t, ("recording", "media_host"), d.media_host, string_value)
    if not is_host(host):
        r.problem(
            "recording.media_host",
            f"is not an IP address or host name: {host!r}",
            "e.g. 127.0.0.1",
        )
    channels, channel_numbers = read_channels(r, t)
    return RecordingConfig(
        spool=r.path_key(t, ("recording", "spool"), d.spool),
        recipients=tuple(r.path_value(p) for p in recipients),
        format=r.choice(t, ("recording", "format"), d.format, MediaFormatName),
        fsync_interval=r.take(
            t, ("recording", "fsync_interval"), d.fsync_interval, number_value(0.0, above=True)
        ),
        on_failure=r.choice(t, ("recording", "on_failure"), d.on_failure, FailurePolicy),
        media_host=host,
        media_port=r.take(t, ("recording", "media_port"), d.media_port, port_value),
        signing_key=_optional_path(r, r.take(t, ("recording", "signing_key"), "", string_value)),
        channels=channels,
        channel_numbers=channel_numbers,
        pause=read_pause(r, t),
    )


def _optional_path(r: Reader, raw: str) -> Path | None:
    return r.path_value(raw) if raw else None


def _privacy(r: Reader, t: dict[str, Any]) -> PrivacyConfig:
    r.unknown(t, ("pseudonym_key", "audit_log"), "privacy")
    d = PrivacyConfig()
    return PrivacyConfig(
        pseudonym_key=r.path_key(t, ("privacy", "pseudonym_key"), d.pseudonym_key),
        audit_log=r.path_key(t, ("privacy", "audit_log"), d.audit_log),
    )


def _consent(r: Reader, t: dict[str, Any]) -> ConsentConfig:
    keys = ("mode", "grace", "optout_digit", "accept_digit", "timeout", "on_decline")
    r.unknown(t, keys, "consent")
    d = ConsentConfig()
    c = ConsentConfig(
        mode=r.choice(t, ("consent", "mode"), d.mode, ConsentMode),
        grace=r.take(t, ("consent", "grace"), d.grace, number_value(0.0)),
        optout_digit=r.take(t, ("consent", "optout_digit"), d.optout_digit, digit_value),
        accept_digit=r.take(t, ("consent", "accept_digit"), d.accept_digit, digit_value),
        timeout=r.take(t, ("consent", "timeout"), d.timeout, number_value(0.0, above=True)),
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


def _prompt_names(r: Reader, t: dict[str, Any], base: PromptNames, *where: str) -> PromptNames:
    return PromptNames(
        disclosure=r.take(t, (*where, "disclosure"), base.disclosure, sound_value),
        not_available=r.take(t, (*where, "not_available"), base.not_available, sound_value),
        recording_unavailable=r.take(
            t, (*where, "recording_unavailable"), base.recording_unavailable, sound_value
        ),
    )


def _prompts(r: Reader, t: dict[str, Any]) -> PromptsConfig:
    keys = ("sounds_dir", "languages", "default_language", *PROMPT_KINDS, "numbers")
    r.unknown(t, keys, "prompts")
    d = PromptsConfig()
    languages = r.take(t, ("prompts", "languages"), d.languages, string_list(language_value))
    if not languages:
        r.problem("prompts.languages", "no language", 'e.g. ["en"]')
        languages = d.languages
    default = r.take(t, ("prompts", "default_language"), languages[0], language_value)
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
            r.problem(dotted("prompts", "numbers", number), f"must be a table, not {kind_of(sub)}")
            continue
        r.unknown(sub, PROMPT_KINDS, "prompts", "numbers", number)
        numbers[number] = _prompt_names(r, sub, names, "prompts", "numbers", number)
    return PromptsConfig(
        sounds_dir=r.path_key(t, ("prompts", "sounds_dir"), d.sounds_dir),
        languages=languages,
        default_language=default,
        names=names,
        numbers=MappingProxyType(numbers),
    )


def _destinations(r: Reader, t: dict[str, Any]) -> Mapping[str, Destination]:
    out: dict[str, Destination] = {}
    for number, sub in t.items():
        where = ("destinations", number)
        if not isinstance(sub, dict):
            r.problem(
                dotted(*where),
                f"must be a table, not {kind_of(sub)}",
                '{ endpoint = "PJSIP/agent", timeout = 30 }',
            )
            continue
        r.unknown(sub, ("endpoint", "timeout"), *where)
        endpoint = r.take(sub, (*where, "endpoint"), "", string_value)
        if "endpoint" not in sub:
            r.problem(dotted(*where, "endpoint"), "missing", 'e.g. endpoint = "PJSIP/agent"')
        elif endpoint and not _ENDPOINT.match(endpoint):
            r.problem(
                dotted(*where, "endpoint"),
                f"is not a dial string: {endpoint!r}",
                "like PJSIP/agent or Local/100@internal",
            )
        timeout = r.take(sub, (*where, "timeout"), 30.0, number_value(0.0, above=True))
        out[number] = Destination(endpoint=endpoint, timeout=timeout)
    return MappingProxyType(out)


def _agi(r: Reader, t: dict[str, Any]) -> AgiConfig:
    r.unknown(t, ("listen", "record_after_consent", "read_timeout"), "agi")
    d = AgiConfig()
    listen = r.take(t, ("agi", "listen"), f"{d.host}:{d.port}", string_value)
    where = host_port(listen)
    if where is None:
        r.problem(
            "agi.listen", f"must be host:port, not {listen!r}", "e.g. 127.0.0.1:4573 or [::1]:4573"
        )
    host, port = where or (d.host, d.port)
    record = r.take(t, ("agi", "record_after_consent"), d.record_after_consent, bool_value)
    timeout = r.take(t, ("agi", "read_timeout"), d.read_timeout, number_value(0.0, above=True))
    return AgiConfig(host=host, port=port, record_after_consent=record, read_timeout=timeout)


def _logging(r: Reader, t: dict[str, Any]) -> LoggingConfig:
    r.unknown(t, ("level",), "logging")
    level = r.take(t, ("logging", "level"), "INFO", string_value).upper()
    if level not in get_args(LogLevel):
        r.problem(
            "logging.level",
            f"must be one of {', '.join(get_args(LogLevel))}",
            "INFO is the usual choice",
        )
        level = "INFO"
    return LoggingConfig(level=cast(LogLevel, level))


def _metrics(r: Reader, t: dict[str, Any]) -> MetricsConfig:
    r.unknown(t, ("listen",), "metrics")
    listen = r.take(t, ("metrics", "listen"), "", string_or_empty)
    if not listen:
        return MetricsConfig()
    where = host_port(listen)
    if where is None:
        r.problem(
            "metrics.listen",
            f"must be host:port or empty, not {safe(listen, 60)!r}",
            'e.g. 127.0.0.1:9464; "" serves no metrics',
        )
        return MetricsConfig()
    return MetricsConfig(*where)
