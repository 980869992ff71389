"""The recording tap: one channel's audio into one sealed recording.

Shared by both front ends (the Stasis app and the AGI snoop path). The tap
never touches the call's own bridge: it snoops the caller into a bridge of
its own with an ExternalMedia channel (:mod:`callrec.tap_media`). Measured on
a real Asterisk 22, that costs the PBX less than adding ExternalMedia to the
call's bridge, which would turn a two-party simple bridge into a softmix
(docs/DESIGN.md). A ``mixed`` recording has one snoop, spy both ways, so
both parties are heard on one channel; a ``stereo`` one two (spy in and spy
out), aligned into a 2-channel file by :mod:`callrec.media.stereo`.

Every PBX object gets an id chosen here before it is requested, so the
router knows it before its StasisStart arrives (trace 05: that event can come
before or after the REST reply), and so ``stop`` can remove whatever a
cancelled ``start`` may have created.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any

from callrec.ari.client import AriClient
from callrec.ari.router import EventRouter
from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.crypto.keys import PublicKey
from callrec.crypto.signing import SigningKey
from callrec.errors import AriError, AriUnavailable, CallrecError, RecordingUnavailable
from callrec.evidence import Evidence
from callrec.live import TapIds
from callrec.logutil import safe
from callrec.media.codecs import MEDIA_FORMATS, Codec
from callrec.media.layout import MIXED, MIXED_SPY, STEREO, ChannelMode, Side, mode_for
from callrec.media.recorder import MediaRecorder
from callrec.media.rtp_stream import RtpStream
from callrec.media.stereo import StereoStream
from callrec.pausing import PauseControl, PauseSource
from callrec.recording import RecordingWriter
from callrec.spool import Spool
from callrec.tap_media import SnoopLeg
from callrec.tap_result import TapResult, closing_summary
from callrec.tap_watchdog import MEDIA_LOST as MEDIA_LOST  # re-exported for the front ends
from callrec.tap_watchdog import MEDIA_TIMEOUT as MEDIA_TIMEOUT
from callrec.tap_watchdog import MediaChange, MediaWatchdog, side_name
from callrec.tap_watchdog import ends_recording as ends_recording

logger = logging.getLogger(__name__)

LogLike = logging.Logger | logging.LoggerAdapter[Any]

# appArgs of the snoop channel, so the Stasis app never mistakes it for a call.
SNOOP_APP_ARG = "callrec-snoop"

# Removing PBX objects must not hold up sealing: a recording is closed within
# one second of the hang-up even when the PBX has gone away.
CLEANUP_TIMEOUT = 0.5

# The end reason of a tap whose start failed (the evidence is sealed, no audio).
RECORDING_FAILED = "recording-failed"


@dataclass(frozen=True, slots=True)
class TapSettings:
    """``channels`` (``[recording] channels``) and ``channel_numbers`` (its
    overrides per dialled number) choose mixed or stereo for each call."""

    app: str
    media_format: str = "ulaw"
    fsync_interval: float = 1.0
    stasis_timeout: float = 5.0
    media_timeout: float = MEDIA_TIMEOUT
    channels: ChannelMode = MIXED
    channel_numbers: Mapping[str, ChannelMode] = field(
        default_factory=lambda: MappingProxyType({})
    )

    def channels_for(self, dialled: str) -> ChannelMode:
        return mode_for(self.channels, self.channel_numbers, dialled)

    @property
    def any_stereo(self) -> bool:
        """Whether some call may be recorded in stereo (by default or for its number)."""
        return STEREO in (self.channels, *self.channel_numbers.values())


def new_id(kind: str) -> str:
    """A fresh id for a PBX object or call (``callrec-<kind>-<16 hex>``), chosen
    by callrec so the router knows it before the PBX mentions it."""
    return f"callrec-{kind}-{uuid.uuid4().hex[:16]}"


class RecordingTap:
    """Snoop + ExternalMedia + bridge + RTP stream + sealed writer, for one channel.

    ``on_failure(reason)`` is called when the recording breaks mid-call: the
    writer failed, or no RTP arrived for ``settings.media_timeout`` seconds
    while recording and not paused (reason :data:`MEDIA_LOST`; for one side
    of a stereo tap while the other still sends,
    :func:`~callrec.tap_watchdog.media_lost_on` that side). Each reason is
    reported once; a ``media-lost`` metadata frame marks every loss (naming
    the side, if one) and the recording stays open, so audio that comes back
    is recorded after a gap, or, for one side, after silence on its channel.
    A failed writer ends the recording: its error text is the closing
    summary's ``failure``, and the owner seals it (:meth:`stop`, or
    :meth:`end_now` while the call goes on).
    With ``signer`` (the recorder's signing key) the sealed recording is signed.
    """

    def __init__(
        self,
        client: AriClient,
        router: EventRouter,
        recorder: MediaRecorder,
        spool: Spool,
        recipients: Sequence[PublicKey],
        settings: TapSettings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        log: LogLike = logger,
        on_failure: Callable[[str], None] | None = None,
        signer: SigningKey | None = None,
    ) -> None:
        media_format = MEDIA_FORMATS.get(settings.media_format)
        if media_format is None:
            raise RecordingUnavailable(f"unsupported media format {settings.media_format!r}")
        self._client = client
        self._router = router
        self._recorder = recorder
        self._spool = spool
        self._recipients = list(recipients)
        self._settings = settings
        self._clock = clock
        self._log = log
        self._on_failure = on_failure
        self._signer = signer
        # Both legs are named now (a live record names them before the start),
        # the second is created only for a stereo recording.
        self.leg = SnoopLeg(new_id("snoop"), new_id("media"), new_id("tap"))
        self.heard_leg = SnoopLeg(new_id("snoop"), new_id("media"), new_id("tap"))
        self.mode: ChannelMode = MIXED
        self._writer: RecordingWriter | None = None
        self._stream: RtpStream | StereoStream | None = None
        self._created_at = 0.0
        self._codec, self._rate = media_format.codec, media_format.sample_rate
        self._stopped = False
        self._ending: asyncio.Future[TapResult | None] | None = None  # end_now's seal
        self._failure: str | None = None  # the writer's error, once it failed
        self.started_at: float | None = None
        self._watchdog: MediaWatchdog | None = None
        self._reported: set[str] = set()  # media losses the owner was told of
        self._evidence: Evidence | None = None
        self.pauses = PauseControl(clock)  # who paused the recording, when (callrec/pausing.py)

    @property
    def recording_id(self) -> str | None:
        return None if self._writer is None else self._writer.recording_id

    @property
    def snoop_id(self) -> str:
        """The caller's snoop (spy both, or spy in for stereo): gone when the caller is."""
        return self.leg.snoop_id

    @property
    def media_id(self) -> str:
        return self.leg.media_id

    @property
    def bridge_id(self) -> str:
        return self.leg.bridge_id

    @property
    def ids(self) -> TapIds:
        """The PBX objects this tap creates, named before any is requested; before
        its start (its number unknown) the second leg if any number may be stereo."""
        said = (self.snoop_id, self.media_id, self.bridge_id)
        undecided = self.started_at is None and self._settings.any_stereo
        if self.mode != STEREO and not undecided:
            return TapIds(*said)
        heard = self.heard_leg
        return TapIds(*said, heard.snoop_id, heard.media_id, heard.bridge_id)

    @property
    def legs(self) -> tuple[SnoopLeg, ...]:
        """The legs this tap's recording uses: one (mixed) or two (stereo)."""
        return (self.leg, self.heard_leg) if self.mode == STEREO else (self.leg,)

    @property
    def recording(self) -> bool:
        return self.started_at is not None and not self._stopped

    async def start(
        self,
        channel_id: str,
        evidence: Evidence,
        call_id: str,
        *,
        continues: Mapping[str, Any] | None = None,
    ) -> str:
        """Start recording ``channel_id``; returns the recording id.

        Fills the evidence's tap channels and recording start time, then
        writes it as the first metadata frame, with ``continues`` (the call
        and the recording a crash or stop cut) for a continuation. Raises
        :class:`RecordingUnavailable` (with the reason) when the spool, the
        keys or the PBX refuse; the caller applies the failure policy.
        """
        self._evidence = evidence
        self.mode = self._settings.channels_for(evidence.dialled)
        evidence.channels.update(snoop=self.snoop_id, external_media=self.media_id)
        if self.mode == STEREO:
            heard = self.heard_leg
            evidence.channels.update(heard_snoop=heard.snoop_id, heard_media=heard.media_id)
        # One start time for the evidence, the summary and the audit durations.
        started = evidence.recording_started_at = self._clock.wall()
        try:
            recording_id = await self._open(channel_id, evidence, call_id, continues)
        except BaseException:  # cancelled too: nothing was recorded
            evidence.recording_started_at = None
            raise
        self.started_at = started
        if self._stream is not None:
            timeout = self._settings.media_timeout
            self._watchdog = MediaWatchdog(self._stream, timeout, self._media_changed)
            self._watchdog.start()
        self._log.info(
            "recording %s started (%s, %s)", recording_id, self._settings.media_format, self.mode
        )
        return recording_id

    async def _open(
        self,
        channel_id: str,
        evidence: Evidence,
        call_id: str,
        continues: Mapping[str, Any] | None,
    ) -> str:
        # The writer first: a full or missing spool must fail before the PBX
        # is asked for anything that would then need cleaning up.
        self._writer = self._create_writer(self._codec, self._rate)
        first = evidence.to_record()
        if continues is not None:
            first["continues"] = dict(continues)
        self._writer.write_metadata(first)
        gate = self.pauses.gate(self._writer)
        if self.mode == STEREO:
            self._stream = self._recorder.open_stereo(
                gate, self._codec, self._rate, call_id, on_error=self._stream_failed
            )
        else:
            self._stream = self._recorder.open_stream(
                gate, self._codec, call_id, on_error=self._stream_failed
            )
        self.pauses.attach(self._stream)
        try:
            await self._connect_media(channel_id)
        except (AriError, AriUnavailable, TimeoutError) as exc:
            raise RecordingUnavailable(f"media setup failed: {_reason(exc)}") from exc
        return self._writer.recording_id

    def _create_writer(self, codec: Codec, rate: int) -> RecordingWriter:
        if not self._recipients:
            raise RecordingUnavailable("no recipient public key configured")
        self._created_at = self._clock.wall()
        try:
            return RecordingWriter.create(
                self._spool.incoming,
                self._recipients,
                codec=codec,
                sample_rate=rate,
                channels=len(self.legs),
                created_at=self._created_at,
                fsync_interval=self._fsync_interval(),
                clock=self._clock,
                signer=self._signer,
            )
        except CallrecError as exc:
            raise RecordingUnavailable(f"cannot write the spool: {_reason(exc)}") from exc
        except OSError as exc:
            raise RecordingUnavailable(f"cannot write the spool: {exc.strerror or exc}") from exc

    def _fsync_interval(self) -> float:
        # A recorder that syncs its recordings from a thread keeps fsync off
        # the event loop: the writer then never syncs by itself.
        if self._recorder.sync_interval is not None:
            return math.inf
        return self._settings.fsync_interval

    async def _connect_media(self, channel_id: str) -> None:
        stream = self._stream
        if isinstance(stream, StereoStream):
            for side, leg in zip(Side, self.legs, strict=True):
                await self._connect(leg, channel_id, side.spy, partial(stream.expect_source, side))
        elif stream is not None:
            await self._connect(self.leg, channel_id, MIXED_SPY, stream.expect_source)

    async def _connect(
        self, leg: SnoopLeg, channel_id: str, spy: str, on_source: Callable[[str, int], None]
    ) -> None:
        settings = self._settings
        await leg.connect(
            self._client,
            self._router,
            channel_id,
            spy=spy,
            app=settings.app,
            app_args=SNOOP_APP_ARG,
            media_format=settings.media_format,
            external_host=self._recorder.external_host,
            stasis_timeout=settings.stasis_timeout,
            on_source=on_source,
        )

    def pause(self, source: PauseSource, at: float | None = None) -> bool:
        """Stop recording audio for now (card details read out); a pause frame
        names ``source``. False when paused already or not recording."""
        return not self._stopped and self.pauses.pause(source, at)

    def resume(self, source: PauseSource, at: float | None = None) -> bool:
        """Record again after :meth:`pause`; a resume frame marks it."""
        return not self._stopped and self.pauses.resume(source, at)

    @property
    def paused(self) -> bool:
        return self.pauses.paused

    def _stream_failed(self, stream: RtpStream | StereoStream, exc: Exception) -> None:
        # The writer failed mid-call (disk full, the length limit): the
        # recording is over, the file will say why, and the owner (told
        # once) applies its failure policy to the call.
        if self._failure is not None:
            return
        self._failure = str(exc)
        if self._on_failure is not None:
            self._on_failure(f"recording stopped: {exc}")

    # --- media watchdog (callrec/tap_watchdog.py) ----------------------------

    def _media_changed(self, change: MediaChange) -> None:
        if self._stopped or self._writer is None or self._stream is None:
            return
        if self._stream.error is not None:  # an earlier mark could not be written
            return
        if change.lost:
            self._lose_media(self._stream, change)
            return
        where = "" if change.side is None else f" on the {side_name(change.side)} side"
        self._log.info("media stream back%s (recording %s)", where, self.recording_id)
        if change.side is not None:  # no gap frame tells where a side came back
            self._mark(self._stream, change)

    def _lose_media(self, stream: RtpStream | StereoStream, change: MediaChange) -> None:
        """Mark the loss in the recording and report it once; the owner's policy decides."""
        if not self._mark(stream, change):
            return
        reason = change.reason
        if change.side is not None:
            self._log.warning(
                "recording %s: no RTP on the %s side for %.1f s while the other side sends;"
                " its channel is silence until it returns",
                self.recording_id,
                side_name(change.side),
                change.idle,
            )
        if self._on_failure is not None and reason not in self._reported:
            self._reported.add(reason)
            self._on_failure(reason)  # the owner logs it with its policy
        elif change.side is None:  # a side's loss was logged above
            self._log.error("%s: no RTP for %.1f s", reason, change.idle)

    def _mark(self, stream: RtpStream | StereoStream, change: MediaChange) -> bool:
        """Write the change's mark after the audio that came before it."""
        assert self._writer is not None
        try:
            # Audio still coalesced arrived before the change: it goes before the mark.
            stream.flush()
            self._writer.write_metadata(change.record(self._clock.wall()))
        except (CallrecError, OSError) as exc:
            stream.fail(exc)  # the recording itself is over: reported as that
            return False
        return True

    def end_now(self, reason: str = RECORDING_FAILED) -> None:
        """End the recording while the call goes on (its writer failed, best-effort).

        Sealed at once in the background, not at the hang-up, which a stuck
        channel may never bring: until then the file would stay an unsealed
        ``.crec.part``. A later :meth:`stop` waits for this seal and returns it.
        """
        if self._stopped:
            return
        self._stopped = True
        self._ending = asyncio.ensure_future(self._finish(reason, {}, pbx_alive=True))

    async def stop(
        self, reason: str, summary: Mapping[str, Any] | None = None, *, pbx_alive: bool = True
    ) -> TapResult | None:
        """Remove the PBX side, drain the stream and seal the recording.

        Idempotent; returns None when nothing was recorded (no writer), or
        when stopped already (after :meth:`end_now`: what that sealed).
        ``pbx_alive=False`` skips the REST clean-up after a PBX restart.
        """
        if self._ending is not None:
            return await asyncio.shield(self._ending)
        if self._stopped:
            return None
        self._stopped = True
        return await self._finish(reason, summary or {}, pbx_alive=pbx_alive)

    async def _finish(
        self, reason: str, summary: Mapping[str, Any], *, pbx_alive: bool
    ) -> TapResult | None:
        if self._watchdog is not None:
            self._watchdog.stop()
        ended = self._clock.wall()
        if self._evidence is not None and self.started_at is not None:
            self._evidence.recording_ended_at = ended
        if pbx_alive:
            await self._remove_pbx_objects()
        for leg in self.legs:
            leg.forget(self._router)
        return await self._seal(reason, summary, ended)

    async def abandon(self, failure: str, end: str = RECORDING_FAILED) -> TapResult | None:
        """After a failed :meth:`start`: remove whatever it created and seal a
        writer already opened (the evidence, no audio)."""
        return await self.stop(end, {"failure": failure})

    async def _remove_pbx_objects(self) -> None:
        # ExternalMedia first: it stops the RTP before the stream is drained.
        steps: list[Awaitable[None]] = [s for leg in self.legs for s in leg.removal(self._client)]
        for step in steps:
            with contextlib.suppress(AriError, AriUnavailable, TimeoutError):
                await asyncio.wait_for(step, CLEANUP_TIMEOUT)

    async def _seal(
        self, reason: str, summary: Mapping[str, Any], ended: float
    ) -> TapResult | None:
        writer, stream = self._writer, self._stream
        if writer is None:
            return None
        stats: dict[str, Any] = {}
        layout: dict[str, Any] = {"channels": self.mode}
        if stream is not None:
            stats = (await self._recorder.close_stream(stream)).as_dict()
            if isinstance(stream, StereoStream):
                layout["sides"] = stream.side_stats()
        # After the last audio, before the summary; held audio the writer
        # refuses fails the stream (self._failure) and never the seal.
        self.pauses.close()
        record = closing_summary(
            reason, self.started_at, ended, stats, self.pauses.records(ended), self._failure
        )
        record.update(layout, **summary)
        try:
            writer.write_metadata(record)
            final = self._spool.final_path(writer.recording_id, self._created_at)
            seal = writer.close(final_path=final)
        except (CallrecError, OSError) as exc:
            # Disk full at the very end: the .part stays (it reads TRUNCATED,
            # and start-up adopts it); nothing in the clear was written.
            writer.abort()
            self._log.error(
                "recording %s not sealed: %s", writer.recording_id, safe(str(exc), 200)
            )
            return TapResult(
                writer.recording_id,
                None,
                stats,
                reason,
                self._rate,
                unsealed=writer.path,
                pauses=self.pauses.totals(ended),
            )
        self._log.info(
            "recording %s sealed (%s, %.2f s audio)", seal.recording_id, reason, seal.audio_seconds
        )
        sealed = max(0.0, self._clock.wall() - ended)
        return TapResult(
            *(seal.recording_id, seal, stats, reason, self._rate),
            seal_seconds=sealed,
            pauses=self.pauses.totals(ended),
        )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no StasisStart from the PBX in time"
    return str(exc) or type(exc).__name__
