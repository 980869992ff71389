"""Playbacks of the ARI simulator: one queue per channel, events as Asterisk sends them.

A channel plays its queue in order; commands wait behind it (trace README,
"Playback"). Each media URI gets PlaybackStarted, then PlaybackContinuing
or, for the last one, PlaybackFinished ``done`` (or ``failed`` for missing
or unreadable media); an unknown scheme starts and never finishes (trace 06).
A hang-up fails the playing one between ChannelHangupRequest and StasisEnd
(trace 02). A bridge's playbacks are played by its announcer channel, whose
sound is what the bridge's members hear.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from callrec.ari.sim import media as sim_media
from callrec.ari.sim.core import SimCore
from callrec.ari.sim.model import (
    Int16Array,
    Json,
    SimChannel,
    SimPlayback,
    make_event,
    media_duration,
    sound_file,
)
from callrec.errors import AudioFileError


class Playbacks:
    """Runs the playback queues of one boot's channels; state lives in the core."""

    def __init__(self, core: SimCore) -> None:
        self.core = core

    def play(
        self,
        ch: SimChannel,
        media: list[str],
        playback_id: str | None,
        lang: str,
        target_uri: str = "",
    ) -> Json:
        """``POST /channels/{id}/play``: queue ``media``; the reply is the queued playback."""
        pb_id = playback_id or self.core.new_uuid()
        pb = SimPlayback(pb_id, media, ch.id, lang or ch.language, target_uri=target_uri)
        self.core.playbacks.setdefault(pb.id, pb)
        reply = pb.to_json()
        ch.playbacks.append(pb)
        ch.control_idle.clear()
        if ch.playback_task is None or ch.playback_task.done():
            ch.playback_task = asyncio.get_running_loop().create_task(self._run(ch))
        return reply

    def stop(self, pb: SimPlayback) -> None:
        """``DELETE /playbacks/{id}``: PlaybackFinished ``done`` before the 204 (trace 03)."""
        ch = self.core.playback_owner(pb)
        if ch is None or ch.current_playback is not pb:
            pb.over = True
            self._unregister(pb)
            return
        self._finish(ch, pb, "done")
        pb.stop.set()

    def fail(self, ch: SimChannel) -> None:
        """The current playback fails while the channel stays; the queue plays on."""
        pb = ch.current_playback
        if pb is not None and not pb.over:
            self._finish(ch, pb, "failed")
            pb.stop.set()

    def fail_all(self, ch: SimChannel) -> None:
        """The channel hung up: the current playback fails, the queued ones vanish."""
        self.end_all(ch, "failed")

    def end_all(self, ch: SimChannel, state: str | None) -> None:
        """The current playback ends ``state`` (None: without an event); the queue vanishes."""
        pb = ch.current_playback
        if pb is not None and not pb.over:
            if state is None:
                pb.over = True
                self._unregister(pb)
            else:
                self._finish(ch, pb, state)
            pb.stop.set()
        for queued in ch.playbacks:
            queued.over = True
            self._unregister(queued)
        ch.playbacks.clear()

    async def _run(self, ch: SimChannel) -> None:
        while ch.alive and ch.playbacks:
            pb = ch.playbacks.popleft()
            if pb.over:
                continue
            ch.current_playback = pb
            await self._play_one(ch, pb)
            ch.current_playback = None
            self._sounds(ch, "")
        ch.control_idle.set()

    def _sounds(self, ch: SimChannel, uri: str, language: str = "") -> None:
        """``ch`` now plays ``uri`` ("" for nothing): an announcer into its bridge,
        any other channel to itself (what it hears, not what its bridge hears)."""
        scheme, _, name = uri.partition(":")
        path = sound_file(self.core.sounds_dir, name, language) if scheme == "sound" else None
        now = asyncio.get_running_loop().time()
        if ch.kind != "announcer":
            # Loaded only while a snoop listens: most playbacks nobody records.
            snooped = any(c.snoop_target == ch.id for c in self.core.channels.values())
            ch.heard, ch.heard_start = _load(path) if snooped else {}, now
            return
        ch.audio = _load(path)
        audible = bool(uri) and (scheme != "sound" or path is not None)
        ch.state = "Up" if audible else "Down"
        ch.media_start = now
        self.core.update_media()

    async def _play_one(self, ch: SimChannel, pb: SimPlayback) -> None:
        self.core.playbacks[pb.id] = pb
        for i, uri in enumerate(pb.media):
            pb.index, pb.state = i, "playing"
            self._sounds(ch, uri, pb.language)
            self._event(ch, "PlaybackStarted", pb)
            length = media_duration(self.core.sounds_dir, uri, pb.language)
            last = i == len(pb.media) - 1
            if length == "never":
                # Unknown scheme: Started, never Finished, gone at once (trace 06).
                pb.over = True
                self._unregister(pb)
                return
            if isinstance(length, float):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(pb.stop.wait(), length)
                if pb.over:
                    return
            if last:
                self._finish(ch, pb, "done" if isinstance(length, float) else "failed")
                return
            pb.state = "continuing"
            self._event(ch, "PlaybackContinuing", pb)

    def _event(self, ch: SimChannel, kind: str, pb: SimPlayback) -> None:
        if ch.app is not None:
            self.core.emit(ch.app, make_event(kind, ch.app, playback=pb.to_json()))

    def _finish(self, ch: SimChannel, pb: SimPlayback, state: str) -> None:
        pb.over, pb.state = True, state
        self._event(ch, "PlaybackFinished", pb)
        self._unregister(pb)

    def _unregister(self, pb: SimPlayback) -> None:
        if self.core.playbacks.get(pb.id) is pb:
            del self.core.playbacks[pb.id]


def _load(path: Path | None) -> dict[int, Int16Array]:
    """A sound's samples; none for a missing or unreadable file (its playback fails)."""
    if path is None:
        return {}
    try:
        return sim_media.load_audio(path, 8000)
    except AudioFileError:
        return {}
