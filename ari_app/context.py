"""What every call session of one running app shares.

One :class:`CallContext` per app: the ARI client, the event router, the media
recorder, the spool, the recipients' keys and the audit log. Sessions read it,
never replace it; the app builds it at start-up and tears it down at exit.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from callrec import evidence
from callrec.ari.client import AriClient
from callrec.ari.router import EventRouter
from callrec.audit import AuditLog
from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.config import Config
from callrec.crypto.keys import PublicKey
from callrec.errors import CallrecError, RecordingUnavailable
from callrec.live import LiveStore
from callrec.logutil import safe
from callrec.media.layout import ChannelMode
from callrec.media.recorder import MediaRecorder
from callrec.spool import Spool
from callrec.tap import MEDIA_TIMEOUT, LogLike, RecordingTap, TapSettings

logger = logging.getLogger(__name__)

# appArgs of the destination leg, so its StasisStart is never taken for a call.
AGENT_APP_ARG = "callrec-agent"
# Channel names of the tap's own channels (never a call, whatever their args).
TAP_CHANNEL_PREFIXES = ("UnicastRTP/", "Snoop/", "AudioSocket/")

# Fallback when a prompt's WAV cannot be measured: how long to let an
# announcement run before hanging up regardless.
DEFAULT_PROMPT_SECONDS = 10.0


@dataclass
class CallContext:
    config: Config
    client: AriClient
    router: EventRouter
    recorder: MediaRecorder
    spool: Spool
    audit: AuditLog
    recipients: list[PublicKey]
    pseudonym_key: bytes
    clock: Clock = SYSTEM_CLOCK
    # Why recording cannot run at all (keys missing at start-up...), or None.
    recording_problem: str | None = None
    # Seconds without RTP before a recorded call's media counts as lost.
    media_timeout: float = MEDIA_TIMEOUT
    # Each live call's crash-safe record; None when the spool cannot hold them.
    live: LiveStore | None = None
    # Asterisk's start time as last read (a live record notes it).
    pbx_boot: str | None = None
    # The taps of this process (both front ends), so that recovering a crashed
    # predecessor's leftovers never touches one of ours.
    taps: weakref.WeakSet[RecordingTap] = field(default_factory=weakref.WeakSet)

    @property
    def app(self) -> str:
        return self.config.ari.app

    @property
    def tap_settings(self) -> TapSettings:
        rec = self.config.recording
        return TapSettings(
            app=self.app,
            media_format=rec.format,
            fsync_interval=rec.fsync_interval,
            media_timeout=self.media_timeout,
            channels=rec.channels,
            channel_numbers=rec.channel_numbers,
        )

    def new_tap(
        self, log: LogLike, on_failure: Callable[[str], None], *, layout: ChannelMode | None = None
    ) -> RecordingTap:
        """A recording tap on this app's PBX, recorder, spool and keys; ``layout``
        mixed or stereo whatever the number (a continuation keeps its call's)."""
        settings = self.tap_settings
        if layout is not None:
            settings = dataclasses.replace(settings, channels=layout, channel_numbers={})
        tap = RecordingTap(
            self.client,
            self.router,
            self.recorder,
            self.spool,
            self.recipients,
            settings,
            clock=self.clock,
            log=log,
            on_failure=on_failure,
            signer=self.audit.signer,  # the recorder signs recordings and audit lines alike
        )
        self.taps.add(tap)
        return tap

    def check_recording(self) -> None:
        """Raise :class:`RecordingUnavailable` when a recording could not be written now.

        Checked before the destination is called, so a strict policy can
        refuse the call before anybody else's phone rings.
        """
        if self.recording_problem is not None:
            raise RecordingUnavailable(self.recording_problem)
        if not self.recipients:
            raise RecordingUnavailable("no recipient public key")
        incoming = self.spool.incoming
        if not incoming.is_dir() or not os.access(incoming, os.W_OK | os.X_OK):
            raise RecordingUnavailable(f"spool {incoming} is not a writable folder")

    def append_audit(self, record: dict[str, Any], personal: dict[str, str]) -> None:
        """Append one audit line; a broken audit log is logged, never fatal to the call."""
        try:
            self.audit.append(record, personal)
        except (CallrecError, OSError) as exc:
            logger.error(
                "audit log %s: cannot append: %s",
                self.config.privacy.audit_log,
                safe(str(exc), 200),
            )


def prompt_seconds(path: Path) -> float:
    """The length of a prompt WAV in seconds, or a safe default."""
    seconds = evidence.prompt_seconds(path)
    return DEFAULT_PROMPT_SECONDS if seconds is None else seconds
