"""Who hears whom in the ARI simulator, and which ExternalMedia streams run.

The senders in :mod:`.media` only pace and send; this module decides what
goes into each 20 ms frame from the bridges and snoops of the current boot.
"""

from __future__ import annotations

import numpy as np

from callrec.ari.sim import media
from callrec.ari.sim.core import SimCore
from callrec.ari.sim.model import Int16Array, SimBridge, SimChannel

# Channel kinds whose far end talks (SIP callers, agents, Local destinations),
# and a bridge's announcer while it plays a bridge playback.
MEDIA_KINDS = ("caller", "pjsip", "local", "announcer")


class Mixer:
    """What each channel says and hears, and which ExternalMedia streams run.

    An ExternalMedia channel hears the mix of its bridge peers; a caller or
    agent says its scenario audio (silence after the end) and hears its
    bridge peers and its own playback; a bridge's announcer says the sound it
    plays; a Snoop says its target's own audio (``spy=in``), what the target
    hears (``spy=out``), or both mixed (``spy=both``).
    """

    def __init__(self, core: SimCore) -> None:
        self.core = core

    def produces(self, ch: SimChannel) -> bool:
        if not ch.alive:
            return False
        if ch.kind == "snoop":
            return ch.snoop_target in self.core.channels
        return ch.kind in MEDIA_KINDS and ch.state == "Up"

    def peers(self, br: SimBridge, cid: str) -> list[SimChannel]:
        """Who ``cid`` hears in ``br``: the other members, and the announcer if any."""
        channels = self.core.channels
        found = [channels[m] for m in br.channels if m != cid and m in channels]
        return found if br.announcer is None else [*found, br.announcer]

    def update(self) -> None:
        for cid, sender in self.core.rtp.items():
            ch = self.core.channels.get(cid)
            br = self.core.bridges.get(ch.bridge_id or "") if ch is not None else None
            live = (
                ch is not None
                and ch.state == "Up"
                and br is not None
                and any(self.produces(m) for m in self.peers(br, cid))
            )
            if live:
                sender.start()
            else:
                sender.stop()

    def ext_hears(self, cid: str, start: int, count: int, rate: int) -> Int16Array:
        ch = self.core.channels.get(cid)
        if ch is None:
            return np.zeros(count, dtype=np.int16)
        return self._hears(ch, start, count, rate, 0)

    def _hears(self, ch: SimChannel, start: int, count: int, rate: int, depth: int) -> Int16Array:
        br = self.core.bridges.get(ch.bridge_id or "")
        parts = []
        if br is not None and depth <= 3:
            parts = [self._says(m, start, count, rate, depth + 1) for m in self.peers(br, ch.id)]
        if ch.heard:
            offset = start - round(ch.heard_start * rate)
            parts.append(media.slice_audio(ch.heard, offset, count, rate))
        return media.mix(parts, count)

    def _says(self, ch: SimChannel, start: int, count: int, rate: int, depth: int) -> Int16Array:
        if ch.kind == "snoop":
            target = self.core.channels.get(ch.snoop_target or "")
            if target is None or depth > 3:
                return np.zeros(count, dtype=np.int16)
            parts = []
            if ch.snoop_spy in ("both", "in"):
                parts.append(self._says(target, start, count, rate, depth + 1))
            if ch.snoop_spy in ("both", "out"):
                parts.append(self._hears(target, start, count, rate, depth + 1))
            return media.mix(parts, count)
        if ch.media_start is None or ch.kind not in MEDIA_KINDS:
            return np.zeros(count, dtype=np.int16)
        offset = start - round(ch.media_start * rate)
        return media.slice_audio(ch.audio, offset, count, rate)
