"""Pausing one call's recording in the Stasis app: the agent's codes, auto-resume, tones.

Three ways pause or resume a call's recording: the agent's feature codes
(:mod:`ari_app.feature_codes`, fed only the destination leg's digits), the
control socket (``callrec calls pause|resume``, :mod:`ari_app.control`) and,
for a forgotten pause, ``[recording] auto_resume`` seconds. Whichever asked,
the agent alone hears the pause or resume tone: it is played on the agent's
channel, which the caller's snoop does not hear, and an ARI ``tone:`` plays
until stopped, so it is stopped after the milliseconds it names.

A call taken over by a restarted recorder (:mod:`ari_app.resumed`) whose
recording was paused starts its continuation paused (:mod:`ari_app.journal`):
the agent's resume code, the control socket and what is left of the
auto-resume time resume it as they would have before the crash. The
deadline is the one set when the pause began, as a reload never changes a
running call's settings; one that passed while no recorder ran resumes the
continuation at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

from ari_app.context import CallContext
from ari_app.feature_codes import DIGIT_TIMEOUT, FeatureCodes, Step
from callrec.ari.client import AriClient
from callrec.clock import Clock
from callrec.config_model import PauseConfig
from callrec.config_pause import agent_media, tone_seconds
from callrec.errors import AriError, AriUnavailable
from callrec.logutil import CallLogAdapter, safe
from callrec.pausing import PauseControl, PauseSource
from callrec.tap import RecordingTap, new_id

# How long the end of a call waits for the agent's tone to be stopped.
TONE_STOP_TIMEOUT = 1.0


class CallPauses:
    """The pause controls of one recorded call, from its recording's start to its end."""

    def __init__(
        self,
        control: PauseControl,
        settings: PauseConfig,
        client: AriClient,
        clock: Clock,
        log: CallLogAdapter,
        *,
        agent_id: str | None,
        language: str,
    ) -> None:
        self.control = control
        self.settings = settings
        self._client = client
        self._clock = clock
        self._log = log
        self._agent_id = agent_id
        self._language = language
        self._codes = FeatureCodes(settings.pause_code, settings.resume_code)
        self._digit_timer: asyncio.Future[None] | None = None
        self._auto_resume: asyncio.Future[None] | None = None
        self._tone: asyncio.Future[None] | None = None
        self._cut = asyncio.Event()  # set: the tone playing now stops early
        self._closed = False
        if control.paused:  # carried over from the recording this one continues
            self._log.warning("the call was paused when the recorder stopped: still paused")
            self._arm_auto_resume()

    @classmethod
    def of_call(
        cls,
        ctx: CallContext,
        tap: RecordingTap,
        log: CallLogAdapter,
        *,
        agent_id: str | None,
        language: str,
    ) -> CallPauses:
        """The pauses of a call recorded by ``tap``, with the settings the call started with."""
        settings = ctx.config.recording.pause
        return cls(
            tap.pauses, settings, ctx.client, ctx.clock, log, agent_id=agent_id, language=language
        )

    @property
    def paused(self) -> bool:
        return self.control.paused

    # --- the agent's digits -----------------------------------------------------

    def on_agent_digit(self, digit: str) -> None:
        """One digit the agent pressed (ChannelDtmfReceived of the destination leg)."""
        if self._closed:
            return
        self._cancel(self._digit_timer)
        for step in self._codes.digit(digit, self.paused):
            self._apply(step)
        if self._codes.typing:
            self._digit_timer = self._later(self._digit_timeout())

    def _apply(self, step: Step) -> None:
        if step is Step.HOLD:
            self.control.hold()
        elif step is Step.RELEASE:
            self.control.release()
        elif step is Step.PAUSE:
            self._pause(PauseSource.AGENT_CODE)
        else:
            self._resume(PauseSource.AGENT_CODE)

    async def _digit_timeout(self) -> None:
        await self._clock.sleep(DIGIT_TIMEOUT)
        for step in self._codes.reset(self.paused):
            self._apply(step)

    # --- pause and resume from anywhere -------------------------------------------

    def pause(self, source: PauseSource) -> bool:
        """Pause now (the control socket); False when paused already or not recording."""
        if self._closed:
            return False
        self._forget_typing()
        return self._pause(source)

    def resume(self, source: PauseSource) -> bool:
        """Resume now; False when not paused."""
        if self._closed:
            return False
        self._forget_typing()
        return self._resume(source)

    def _forget_typing(self) -> None:
        self._cancel(self._digit_timer)
        for step in self._codes.reset(self.paused):
            self._apply(step)

    def _pause(self, source: PauseSource) -> bool:
        # Counted from the pause's start: a code's first digit, not its last.
        if not self.control.pause(source, auto_resume=self.settings.auto_resume):
            return False
        self._log.info("recording paused (%s)", source)
        self._arm_auto_resume()
        self._play(self.settings.pause_tone)
        return True

    def _arm_auto_resume(self) -> None:
        pause = self.control.current
        if pause is None or pause.resume_by is None:
            return
        left = max(0.0, pause.resume_by - self._clock.wall())
        limit = pause.resume_by - (pause.start if pause.asked_at is None else pause.asked_at)
        self._auto_resume = self._later(self._resume_later(left, limit))

    def _resume(self, source: PauseSource) -> bool:
        if not self.control.resume(source):
            return False
        self._cancel(self._auto_resume)
        self._log.info("recording resumed (%s)", source)
        self._play(self.settings.resume_tone)
        return True

    async def _resume_later(self, delay: float, limit: float) -> None:
        await self._clock.sleep(delay)
        self._auto_resume = None  # not cancelled by the resume it makes
        if self._resume(PauseSource.AUTO_RESUME):
            self._log.warning("a pause was still on after %g s: recording again", limit)

    # --- what the agent hears ---------------------------------------------------------

    def _play(self, setting: str) -> None:
        media = agent_media(setting)
        if self._agent_id is None or not media:
            return
        # A tone is never cancelled mid-request (it would play on unstopped):
        # the one before is cut short, and this one plays after it.
        self._cut.set()
        self._cut = asyncio.Event()
        previous = self._tone
        self._tone = self._later(self._play_tone(self._agent_id, media, previous, self._cut))

    async def _play_tone(
        self,
        agent_id: str,
        media: str,
        previous: asyncio.Future[None] | None,
        cut: asyncio.Event,
    ) -> None:
        if previous is not None:
            await previous
        if cut.is_set():
            return  # another tone came before this one could start
        playback_id = new_id("tone")
        try:
            await self._client.play(agent_id, media, playback_id=playback_id, lang=self._language)
        except (AriError, AriUnavailable) as exc:
            self._log.warning("the agent's tone %s did not play: %s", media, safe(str(exc), 200))
            return
        seconds = tone_seconds(media)
        if seconds is None:
            return  # a sound ends by itself
        await _first(self._clock.sleep(seconds), cut.wait())
        with contextlib.suppress(AriError, AriUnavailable):
            await self._client.stop_playback(playback_id)

    # --- life cycle ---------------------------------------------------------------

    async def close(self) -> None:
        """The call ends: no more timers, no tone left playing."""
        self._closed = True
        for task in (self._digit_timer, self._auto_resume):
            self._cancel(task)
        self._cut.set()
        if self._tone is not None:
            # Bounded: an ARI that stopped answering must not hold the call's end up.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._tone), TONE_STOP_TIMEOUT)

    def _later(self, job: Coroutine[Any, Any, None]) -> asyncio.Future[None]:
        return asyncio.ensure_future(job)

    @staticmethod
    def _cancel(task: asyncio.Future[None] | None) -> None:
        if task is not None and not task.done():
            task.cancel()


async def _first(*waits: Coroutine[Any, Any, Any]) -> None:
    """Wait until the first of ``waits`` is done; the others are cancelled."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


async def join_call(
    client: AriClient, bridge_id: str, caller_id: str, agent_id: str, settings: PauseConfig
) -> None:
    """Caller and agent into the call's bridge.

    With feature codes the agent's digits are absorbed by the bridge: the
    caller hears none of them (RFC 4733, or tones Asterisk would render
    inband towards a caller without RFC 4733, which the caller's snoop would
    record), while Asterisk still reports them to the app.
    """
    if not settings.codes:
        await client.add_channels(bridge_id, [caller_id, agent_id])
        return
    await client.add_channels(bridge_id, [caller_id])
    await client.add_channels(bridge_id, [agent_id], absorb_dtmf=True)
