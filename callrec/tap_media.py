"""The PBX side of a recording tap: one snoop, its ExternalMedia channel, their bridge.

A mixed recording has one :class:`SnoopLeg` (spy both); a stereo recording
two, each with its own ExternalMedia stream: spy in (what the caller says)
and spy out (what the caller hears), each in a bridge of its own, since a
bridge mixes whatever is in it. Every id is chosen before anything is
requested (:func:`callrec.tap.new_id`), so the router knows a channel
before its StasisStart and ``remove`` can clean up after a cancelled
``connect``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from callrec.ari.client import AriClient
from callrec.ari.router import EventRouter

# Bridge name of every tap bridge (the ids start "callrec-tap-").
TAP_BRIDGE_NAME = "callrec-tap"

SourceSink = Callable[[str, int], None]


@dataclass(frozen=True, slots=True)
class SnoopLeg:
    """The ids of one snoop + ExternalMedia + bridge (named before any is requested)."""

    snoop_id: str
    media_id: str
    bridge_id: str

    @property
    def channels(self) -> tuple[str, str]:
        return self.snoop_id, self.media_id

    async def connect(
        self,
        client: AriClient,
        router: EventRouter,
        channel_id: str,
        *,
        spy: str,
        app: str,
        app_args: str,
        media_format: str,
        external_host: str,
        stasis_timeout: float,
        on_source: SourceSink,
    ) -> None:
        """Snoop ``channel_id`` (``spy`` direction) into ExternalMedia in a bridge of its own.

        ``on_source(host, port)`` learns where Asterisk will send the RTP
        from before the bridge lets it flow, so no packet is taken for a
        stranger's.
        """
        router.expect(self.snoop_id)
        router.expect(self.media_id)
        await client.snoop(channel_id, app=app, app_args=app_args, spy=spy, snoop_id=self.snoop_id)
        await router.wait_for(self.snoop_id, "StasisStart", stasis_timeout)
        media = await client.external_media(
            app=app,
            external_host=external_host,
            format=media_format,
            channel_id=self.media_id,
        )
        if media.rtp_address is not None and media.rtp_port is not None:
            on_source(media.rtp_address, media.rtp_port)
        # addChannel before its StasisStart gives 422 (trace README).
        await router.wait_for(self.media_id, "StasisStart", stasis_timeout)
        await client.create_bridge("mixing", bridge_id=self.bridge_id, name=TAP_BRIDGE_NAME)
        await client.add_channels(self.bridge_id, [self.snoop_id, self.media_id])

    def removal(self, client: AriClient) -> list[Awaitable[None]]:
        """The requests that remove this leg, ExternalMedia first (it stops the RTP)."""
        return [
            client.hangup(self.media_id),
            client.hangup(self.snoop_id),
            client.destroy_bridge(self.bridge_id),
        ]

    def forget(self, router: EventRouter) -> None:
        for channel_id in self.channels:
            router.forget(channel_id)
