"""The ExternalMedia round trip: does Asterisk's audio really reach the media address?

What a recorded call does, without a call: the doctor binds a UDP port on
``recording.media_host``, makes a bridge and an ExternalMedia channel (the
config's ``recording.format``) pointing at that port, and plays the
disclosure prompt into the bridge (Asterisk's announcer: no dialplan, no
phone). RTP must then arrive from the address Asterisk announced for the
channel (``UNICASTRTP_LOCAL_*``): the recorder drops packets from anywhere
else, so audio from another address is a failure too.

Everything runs under an app name of the doctor's own (``callrec-doctor-<hex>``),
never the recorder's: a websocket with the recorder's name would take its
calls away. The ids of what it creates are chosen up front, so the bridge,
channel and playback are removed on every path, even when a reply was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from callrec.ari.client import AriClient
from callrec.ari.events import Connected, Event, PlaybackFinished, StasisStart
from callrec.config_model import Config
from callrec.doctor.result import CheckName, CheckResult
from callrec.errors import AriError, AriNotFound, AriUnavailable, CallrecError, RtpError
from callrec.media.codecs import MEDIA_FORMATS
from callrec.media.rtp import RtpPacket
from callrec.spool import os_reason

DOCTOR_APP = "callrec-doctor"
MIN_PACKETS = 10  # 200 ms of audio: a stream, not a stray packet
_POLL = 0.02

Address = tuple[str, int]


@dataclass
class _Receiver(asyncio.DatagramProtocol):
    """Counts the RTP packets reaching the doctor's port, by source and payload type."""

    packets: list[tuple[Address, int]] = field(default_factory=list)
    not_rtp: int = 0

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        try:
            packet = RtpPacket.parse(data)
        except RtpError:
            self.not_rtp += 1
            return
        self.packets.append(((str(addr[0]), int(addr[1])), packet.payload_type))


class _Events:
    """The doctor app's events, kept for :meth:`wait`."""

    def __init__(self, client: AriClient) -> None:
        self.client = client
        self.items: list[Event] = []
        self.connected = asyncio.Event()
        self.error: CallrecError | None = None

    async def run(self) -> None:
        try:
            async for item in self.client.events():
                if isinstance(item, Connected):
                    self.connected.set()
                elif isinstance(item, Event):
                    self.items.append(item)
        except CallrecError as exc:  # 401, or a refused handshake
            self.error = exc
            self.connected.set()

    def seen(self, wanted: Callable[[Event], bool]) -> bool:
        return any(wanted(e) for e in self.items)


@dataclass
class _Made:
    """What the doctor asked Asterisk to create (ids chosen up front), to remove again."""

    bridge: str | None = None
    channel: str | None = None
    playback: str | None = None


@dataclass(frozen=True)
class MediaSettings:
    """How long the doctor waits for each step (requests, events, the first packets)."""

    wait: float = 5.0


async def check_media(config: Config, settings: MediaSettings) -> CheckResult:
    """The round trip; FAIL names the step that broke, and what was left behind."""
    rec = config.recording
    loop = asyncio.get_running_loop()
    try:
        transport, receiver = await loop.create_datagram_endpoint(
            _Receiver, local_addr=(rec.media_host, 0)
        )
    except OSError as exc:
        return CheckResult.fail(
            CheckName.MEDIA,
            f"cannot listen on {rec.media_host}: {os_reason(exc)}",
            "recording.media_host must be an address of this host",
        )
    host, port = transport.get_extra_info("sockname")[:2]
    app = f"{DOCTOR_APP}-{secrets.token_hex(4)}"
    ari = config.ari
    client = AriClient(ari.url, ari.user, ari.password, app, timeout=settings.wait)
    events = _Events(client)
    reader = loop.create_task(events.run())
    made = _Made()
    try:
        trip = _Trip(client, events, receiver, made, config, settings)
        result = await trip.run(app, f"{host}:{port}")
    finally:
        left = await _remove(client, made, settings.wait)
        reader.cancel()
        # Its CancelledError comes back as a result; the caller's own would not.
        await asyncio.gather(reader, return_exceptions=True)
        await client.close()
        transport.close()
    if left:
        return CheckResult.fail(
            CheckName.MEDIA,
            f"{result.summary}; and the doctor could not remove what it made",
            "remove these by hand (ARI DELETE, or `bridge destroy` / `channel request "
            "hangup` on the Asterisk CLI)",
            details=(*result.details, *left),
        )
    return result


async def _remove(client: AriClient, made: _Made, wait: float) -> list[str]:
    """Stop, hang up, destroy: what could not be removed, as detail lines.

    Asterisk answers a hang-up (204) before the channel is destroyed: the real
    PBX still listed the ExternalMedia channel a moment later. The doctor waits
    until Asterisk no longer knows it, so "nothing left behind" holds when it
    returns.
    """
    steps = (
        ("playback", made.playback, client.stop_playback),
        ("ExternalMedia channel", made.channel, client.hangup),
        ("bridge", made.bridge, client.destroy_bridge),
    )
    left = []
    for what, ident, remove in steps:
        if ident is None:
            continue
        try:
            await remove(ident)
            if ident == made.channel and not await _channel_gone(client, ident, wait):
                left.append(
                    f"left in Asterisk: {what} {ident} (still there {wait:g} s after hang-up)"
                )
        except AriNotFound:
            pass  # never made, or already gone: fine
        except (AriError, AriUnavailable) as exc:
            left.append(f"left in Asterisk: {what} {ident} ({exc})")
    return left


async def _channel_gone(client: AriClient, channel_id: str, wait: float) -> bool:
    """Poll until Asterisk answers 404 for the channel (True), or ``wait`` is over."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(wait):
            while True:
                try:
                    await client.get_channel(channel_id)
                except AriNotFound:
                    return True
                await asyncio.sleep(_POLL)
    return False


class _Trip:
    """One round trip, step by step; each step either goes on or returns the FAIL."""

    def __init__(
        self,
        client: AriClient,
        events: _Events,
        receiver: _Receiver,
        made: _Made,
        config: Config,
        settings: MediaSettings,
    ) -> None:
        self.client, self.events, self.receiver, self.made = client, events, receiver, made
        self.config, self.wait = config, settings.wait
        self.format = config.recording.format
        self.prompt = config.prompt_for("", config.prompts.default_language, "disclosure")

    def _fail(self, summary: str, hint: str, *details: str) -> CheckResult:
        return CheckResult.fail(CheckName.MEDIA, summary, hint, details=details)

    async def _until(self, done: Callable[[], bool]) -> bool:
        """Poll ``done`` until it holds (True) or the wait is over (False)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.wait):
                while not done():  # noqa: ASYNC110 (packets and events land in lists)
                    await asyncio.sleep(_POLL)
                return True
        return False

    async def run(self, app: str, target: str) -> CheckResult:
        try:
            return await self._run(app, target)
        except (AriError, AriUnavailable) as exc:
            return self._fail(
                f"ARI refused a step of the round trip: {exc}", "see the ari and asterisk lines"
            )

    async def _run(self, app: str, target: str) -> CheckResult:
        await self._until(self.events.connected.is_set)
        if self.events.error is not None or not self.events.connected.is_set():
            why = self.events.error or f"no answer in {self.wait:g} s"
            return self._fail(
                f"Asterisk refused the events websocket of app {app!r}: {why}",
                "res_ari_events.so and res_http_websocket.so must be loaded",
            )
        self.made.bridge = f"{app}-bridge"
        await self.client.create_bridge("mixing", bridge_id=self.made.bridge, name=DOCTOR_APP)
        self.made.channel = f"{app}-media"
        try:
            channel = await self.client.external_media(
                app=app, external_host=target, format=self.format, channel_id=self.made.channel
            )
        except AriError as exc:
            return self._fail(
                f"Asterisk refused an ExternalMedia channel ({self.format} to {target}): "
                f"{exc.status} {exc.message}",
                "chan_rtp.so and the codec of recording.format must be loaded "
                "(see the asterisk line)",
            )
        cid = channel.id
        if not await self._until(lambda: self.events.seen(_stasis_start(cid))):
            return self._fail(
                f"the ExternalMedia channel never entered app {app!r} in {self.wait:g} s",
                "see Asterisk's log for why the channel ended",
            )
        await self.client.add_channels(self.made.bridge, [cid])
        self.made.playback = f"{app}-playback"
        await self.client.play_on_bridge(
            self.made.bridge, self.prompt.media, self.made.playback, self.prompt.language
        )
        announced = (
            None
            if channel.rtp_address is None or channel.rtp_port is None
            else (channel.rtp_address, channel.rtp_port)
        )
        await self._until(lambda: self._enough(announced))
        return self._judge(target, announced)

    def _finished(self) -> PlaybackFinished | None:
        for event in self.events.items:
            if isinstance(event, PlaybackFinished) and event.playback.id == self.made.playback:
                return event
        return None

    def _good(self, announced: Address | None) -> int:
        pt = MEDIA_FORMATS[self.format].payload_type
        return sum(
            1
            for source, payload_type in self.receiver.packets
            if payload_type == pt and (announced is None or source == announced)
        )

    def _enough(self, announced: Address | None) -> bool:
        return self._good(announced) >= MIN_PACKETS or self._finished() is not None

    def _judge(self, target: str, announced: Address | None) -> CheckResult:
        prompt = f"{self.prompt.media} ({self.prompt.language})"
        source = "an address Asterisk did not announce" if announced is None else announced
        details = (
            f"ExternalMedia {self.format} to {target}, played {prompt} into its bridge",
            f"Asterisk announced it sends from {_address(announced)}",
        )
        good = self._good(announced)
        if good:
            return CheckResult.ok(
                CheckName.MEDIA,
                f"{good} RTP packets of {self.format} audio from Asterisk reached {target}",
                details=details,
                data={"packets": good, "target": target},
            )
        received = self.receiver.packets
        finished = self._finished()
        if received:
            sources = sorted({src for src, _ in received})
            pts = sorted({pt for _, pt in received})
            return self._fail(
                f"RTP reached {target} from {', '.join(map(_address, sources))} with payload "
                f"type(s) {pts}, not {self.format} from {source}: the recorder drops it",
                "something between Asterisk and callrec rewrites addresses or formats (NAT, "
                "a proxy): callrec must receive straight from Asterisk",
                *details,
            )
        if finished is not None and finished.playback.state == "failed":
            return self._fail(
                f"Asterisk could not play {prompt}: no audio to send",
                "see the prompts line: the prompt must be in Asterisk's sounds folder, "
                "readable by the Asterisk user",
                *details,
            )
        return self._fail(
            f"no RTP reached {target} in {self.wait:g} s",
            "Asterisk must reach recording.media_host over UDP (a firewall? an address "
            "Asterisk cannot route to?)",
            *details,
        )


def _address(addr: Address | None) -> str:
    return "(not announced)" if addr is None else f"{addr[0]}:{addr[1]}"


def _stasis_start(channel_id: str) -> Callable[[Event], bool]:
    def wanted(event: Event) -> bool:
        return isinstance(event, StasisStart) and event.channel.id == channel_id

    return wanted
