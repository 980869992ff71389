"""The callrec configuration as frozen, typed dataclasses.

What :func:`callrec.config.load_config` returns, with the defaults of every
key (``config/callrec.toml`` is the commented reference). Kept apart from the
reading and checking so the checks of the files the config names
(:mod:`callrec.config_checks`) can take a :class:`Config` without importing
the loader that calls them.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, cast, get_args

from callrec.consent import ConsentPolicy
from callrec.crypto.keys import PublicKey
from callrec.crypto.signing import SigningKey
from callrec.failure_policy import BEST_EFFORT, FailurePolicy
from callrec.media.codecs import MediaFormatName
from callrec.media.layout import MIXED, ChannelMode, mode_for
from callrec.prompts.names import PromptRef

PromptKind = Literal["disclosure", "not_available", "recording_unavailable"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

PROMPT_KINDS: tuple[PromptKind, ...] = get_args(PromptKind)


@dataclass(frozen=True)
class AriConfig:
    url: str = "http://127.0.0.1:8088"
    user: str = "callrec"
    password: str = field(default="", repr=False)
    app: str = "callrec"
    password_from_env: bool = False


# Heard by the agent only when the recording pauses (falling) and resumes
# (rising); ARI tone lists play until stopped, the app stops them after the
# durations they name.
DEFAULT_PAUSE_TONE = "tone:!660/150,!0/60,!440/200"
DEFAULT_RESUME_TONE = "tone:!440/150,!0/60,!660/200"


@dataclass(frozen=True)
class PauseConfig:
    """``[recording]`` pause keys: the agent's feature codes (ARI app), the
    forgotten pause's limit and what the agent hears. An empty code is off;
    ``auto_resume`` 0 never resumes by itself; an empty tone plays nothing."""

    pause_code: str = "*1"
    resume_code: str = "*2"
    auto_resume: float = 0.0
    pause_tone: str = DEFAULT_PAUSE_TONE
    resume_tone: str = DEFAULT_RESUME_TONE

    @property
    def codes(self) -> bool:
        """Whether the agent's digits are listened to at all."""
        return bool(self.pause_code or self.resume_code)


@dataclass(frozen=True)
class ControlConfig:
    """``[control]``: the local socket ``callrec calls`` talks to ``serve`` over;
    None: none (no CRM control)."""

    socket: Path | None = Path("/run/callrec/control.sock")


@dataclass(frozen=True)
class RecordingConfig:
    spool: Path = Path("/var/spool/callrec")
    recipients: tuple[Path, ...] = (Path("/etc/callrec/dpo.pub"),)
    format: MediaFormatName = "ulaw"
    fsync_interval: float = 1.0
    on_failure: FailurePolicy = BEST_EFFORT
    media_host: str = "127.0.0.1"
    media_port: int = 0
    signing_key: Path | None = None  # the recorder's Ed25519 key; None: unsigned
    pause: PauseConfig = PauseConfig()
    # mixed: one channel; stereo: caller left, callee right (per dialled number too)
    channels: ChannelMode = MIXED
    channel_numbers: Mapping[str, ChannelMode] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def channels_for(self, dialled: str) -> ChannelMode:
        """The channel layout of a recording of a call to ``dialled``."""
        return mode_for(self.channels, self.channel_numbers, dialled)


@dataclass(frozen=True)
class PrivacyConfig:
    pseudonym_key: Path = Path("/etc/callrec/pseudonym.key")
    audit_log: Path = Path("/var/log/callrec/audit.jsonl")


# The consent section is the policy itself: one definition of its fields.
ConsentConfig = ConsentPolicy


@dataclass(frozen=True)
class PromptNames:
    disclosure: str = "callrec/disclosure"
    not_available: str = "callrec/not-available"
    recording_unavailable: str = "callrec/recording-unavailable"

    def name(self, kind: PromptKind) -> str:
        return cast(str, getattr(self, kind))


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
    # Seconds a FastAGI session may wait for one reply (the disclosure plays
    # inside one): a peer that goes silent is ended, not held forever.
    read_timeout: float = 60.0


@dataclass(frozen=True)
class LoggingConfig:
    level: LogLevel = "INFO"


@dataclass(frozen=True)
class MetricsConfig:
    """Where ``callrec serve`` serves Prometheus metrics; no host: not at all."""

    host: str = ""
    port: int = 0

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class AuditConfig:
    """The access log (who decrypted, exported, held, released or deleted what, and why).

    None: ``access.jsonl`` beside ``privacy.audit_log`` (:meth:`Config.access_log`).
    """

    access_log: Path | None = None


@dataclass(frozen=True)
class RetentionRule:
    """How long a recording is kept, and the config key that says so (the tombstone's rule)."""

    days: int
    key: str

    def __str__(self) -> str:
        return f"{self.key} = {self.days}"


@dataclass(frozen=True)
class RetentionConfig:
    """``[retention]``: days a recording is kept, with overrides per dialled number."""

    days: int = 90
    numbers: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def rule_for(self, dialled: str) -> RetentionRule:
        """The rule that applies to a recording of a call to ``dialled``."""
        if dialled in self.numbers:
            quoted = dialled.replace('"', '\\"')
            return RetentionRule(self.numbers[dialled], f'retention.numbers."{quoted}".days')
        return RetentionRule(self.days, "retention.days")


# An embedded database that needs no server; PostgreSQL when recorders share one.
DEFAULT_CATALOG_URL = "sqlite:///var/lib/callrec/catalog.sqlite3"


@dataclass(frozen=True)
class CatalogConfig:
    """Where the catalogue of calls and recordings is (:mod:`callrec.catalog`).

    ``recorder_id`` names this recorder's entries in a catalogue several
    share; it defaults to the host name. The URL may hold a password: kept
    out of ``repr``.
    """

    url: str = field(default=DEFAULT_CATALOG_URL, repr=False)
    recorder_id: str = field(default_factory=socket.gethostname)


@dataclass(frozen=True)
class Config:
    path: Path = Path("callrec.toml")
    ari: AriConfig = AriConfig()
    recording: RecordingConfig = RecordingConfig()
    privacy: PrivacyConfig = PrivacyConfig()
    consent: ConsentPolicy = field(default_factory=ConsentPolicy)
    prompts: PromptsConfig = PromptsConfig()
    destinations: Mapping[str, Destination] = field(default_factory=lambda: MappingProxyType({}))
    agi: AgiConfig = AgiConfig()
    logging: LoggingConfig = LoggingConfig()
    metrics: MetricsConfig = MetricsConfig()
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    audit: AuditConfig = AuditConfig()
    retention: RetentionConfig = RetentionConfig()
    control: ControlConfig = ControlConfig()

    @property
    def access_log(self) -> Path:
        """Where access lines go: ``audit.access_log``, else beside the audit log."""
        return self.audit.access_log or self.privacy.audit_log.parent / "access.jsonl"

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
        """The recipients' public keys; raises ``KeyFileError`` naming a bad file."""
        return [PublicKey.load(path) for path in self.recording.recipients]

    def recording_signer(self) -> SigningKey | None:
        """The recorder's signing key, or None when none is configured.

        Raises ``KeyFileError`` naming the file when it cannot be used; a
        passphrase-protected key cannot be (a service cannot type one).
        """
        path = self.recording.signing_key
        return None if path is None else SigningKey.load(path)

    def destination_for(self, number: str) -> Destination | None:
        """The destination for a dialled number, else ``default``, else None."""
        return self.destinations.get(number, self.destinations.get("default"))
