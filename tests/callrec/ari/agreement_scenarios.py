"""The scenarios both the simulator and the real PBX run (see :mod:`.agreement`).

Each is an ARI script a recorder could run, timed by the session's
:class:`~tests.callrec.ari.agreement.Timing`; it waits for events rather
than for time wherever it can, so both PBXs see the same steps in the same
order. Notes record REST outcomes (status and error body) beside the events.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp

from tests.callrec.ari.agreement import (
    APP,
    LONG_SOUND,
    SHORT_SOUND,
    CallerPlan,
    Json,
    Reply,
    RtpTap,
    Scenario,
    Session,
)

IDLE_APP = APP + "-idle"


def outcome(reply: Reply) -> list[Any]:
    """Status, and the body of an error (a success's body holds ids and times)."""
    return [reply.status, reply.body if reply.status >= 400 else None]


async def answered_caller(s: Session, plan: CallerPlan) -> str:
    caller = await s.caller(plan)
    await s.ok("POST", f"/channels/{caller}/answer")
    await s.expect("caller", "ChannelStateChange")
    return caller


async def play(s: Session, role: str, sound: str, **query: str) -> str:
    body = await s.ok("POST", f"/channels/{s.id(role)}/play", media=f"sound:{sound}", **query)
    await s.expect(role, "PlaybackStarted")
    return str(body["id"])


async def originate(s: Session, endpoint: str, ring: float = 10) -> str:
    body = await s.ok(
        "POST",
        "/channels",
        endpoint=endpoint,
        app=APP,
        appArgs="destination",
        timeout=str(round(ring)),
        originator=s.id("caller"),
    )
    return s.name("destination", str(body["id"]))


async def new_bridge(s: Session, role: str) -> str:
    return s.name(role, str((await s.ok("POST", "/bridges", type="mixing"))["id"]))


async def join(s: Session, bridge: str, role: str) -> None:
    await s.ok("POST", f"/bridges/{s.id(bridge)}/addChannel", channel=s.id(role))
    await s.expect(role, "ChannelEnteredBridge")


async def external_media(s: Session, tap: RtpTap, fmt: str) -> None:
    body = await s.ok(
        "POST", "/channels/externalMedia", app=APP, external_host=tap.host_port, format=fmt
    )
    s.name("externalmedia", str(body["id"]))
    await s.expect("externalmedia", "StasisStart")


async def hang_up(s: Session, role: str, last: str, **query: str) -> None:
    await s.ok("DELETE", f"/channels/{s.id(role)}", **query)
    await s.expect(role, last)


async def destroy_bridge(s: Session, role: str) -> None:
    await s.ok("DELETE", f"/bridges/{s.id(role)}")
    await s.expect(role, "BridgeDestroyed")


async def recorded_call(s: Session, plan: CallerPlan, tap: RtpTap) -> None:
    """What callrec builds for a consenting caller: disclosure, destination, snoop tap."""
    await answered_caller(s, plan)
    await play(s, "caller", SHORT_SOUND)
    await s.expect("caller", "PlaybackFinished")
    await originate(s, "PJSIP/agent")
    await s.expect("destination", "StasisStart")
    await new_bridge(s, "bridge")
    await join(s, "bridge", "caller")
    await join(s, "bridge", "destination")
    body = await s.ok(
        "POST", f"/channels/{s.id('caller')}/snoop", spy="both", app=APP, appArgs="snoop"
    )
    s.name("snoop", str(body["id"]))
    await s.expect("snoop", "StasisStart")
    await external_media(s, tap, "ulaw")
    await new_bridge(s, "recording")
    await join(s, "recording", "snoop")
    await join(s, "recording", "externalmedia")
    await tap.wait(10)


async def implied_consent(s: Session) -> None:
    """Trace 01: answered, disclosure, destination bridged, snoop + ExternalMedia, caller's BYE."""
    t = s.timing
    tap = await RtpTap().open()
    try:
        await recorded_call(s, CallerPlan(hold=t.short + 3 * t.settle), tap)
        s.note("rtp", tap.summary())
        await s.expect("caller", "StasisEnd")
        await s.expect("snoop", "StasisEnd")
        s.note("rtp_after_snoop_left", await _still_sending(tap))
        await hang_up(s, "destination", "ChannelDestroyed")
        await hang_up(s, "externalmedia", "ChannelDestroyed")
        await destroy_bridge(s, "bridge")
        await destroy_bridge(s, "recording")
    finally:
        tap.close()


async def _still_sending(tap: RtpTap) -> bool:
    """Whether RTP still arrives (packets on their way are let in first)."""
    await asyncio.sleep(0.1)
    before = len(tap.packets)
    await asyncio.sleep(0.3)
    return len(tap.packets) > before


async def recorder_crash(s: Session) -> None:
    """The recorder dies mid-call (its websocket is cut) and a new one connects:
    what Asterisk keeps, what it shows, and that the new socket hears the calls."""
    tap = await RtpTap().open()
    try:
        await recorded_call(s, CallerPlan(hold=None), tap)
        assert s.socket is not None
        await s.socket.drop()
        await asyncio.sleep(s.timing.settle / 3)
        s.note("app_while_away", await app_state(s, APP))
        s.note("rtp_while_away", await _still_sending(tap))
        s.note("left_behind", await _left_behind(s))
        await s.connect()
        await hang_up(s, "caller", "StasisEnd")
        await s.expect("snoop", "StasisEnd")
        for role in ("destination", "externalmedia"):
            await hang_up(s, role, "ChannelDestroyed")
        for role in ("bridge", "recording"):
            await destroy_bridge(s, role)
    finally:
        tap.close()


async def _left_behind(s: Session) -> Json:
    """The channels (by role) and bridges (with their members) Asterisk holds now."""
    channels = sorted(s.role(c["id"], c["name"]) for c in await s.ok("GET", "/channels"))
    bridges = {
        s.role(b["id"]): sorted(s.role(c) for c in b["channels"])
        for b in await s.ok("GET", "/bridges")
    }
    return {"channels": channels, "bridges": bridges}


async def hangup_during_playback(s: Session) -> None:
    """Trace 02: the caller's BYE ends a playing disclosure ``failed``."""
    caller = await answered_caller(s, CallerPlan(hold=s.timing.settle))
    await play(s, "caller", LONG_SOUND, playbackId="agree-disclosure")
    playing = await s.rest("GET", "/playbacks/agree-disclosure")
    s.note("playback_while_playing", [playing.status, playing.body["state"]])
    await s.expect("caller", "StasisEnd")
    s.note("playback_afterwards", outcome(await s.rest("GET", "/playbacks/agree-disclosure")))
    s.note("stop_afterwards", outcome(await s.rest("DELETE", "/playbacks/agree-disclosure")))
    s.note("channel_afterwards", outcome(await s.rest("GET", f"/channels/{caller}")))


async def dtmf_during_playback(s: Session) -> None:
    """Trace 03: a digit during the disclosure; stopping it ends it ``done``; then BYE."""
    t = s.timing
    await answered_caller(s, CallerPlan(hold=2 * t.settle + t.short, digit_at=t.settle))
    playback = await play(s, "caller", LONG_SOUND)
    await s.expect("caller", "ChannelDtmfReceived")
    s.note("stop", outcome(await s.rest("DELETE", f"/playbacks/{playback}")))
    await s.expect("caller", "PlaybackFinished")
    await play(s, "caller", SHORT_SOUND)
    await s.expect("caller", "PlaybackFinished")
    await s.expect("caller", "StasisEnd")


async def _unreachable(s: Session, endpoint: str, ring: float) -> None:
    caller = await answered_caller(s, CallerPlan(hold=None))
    destination = await originate(s, endpoint, ring)
    await s.expect("destination", "ChannelDestroyed")
    s.note("destination_afterwards", outcome(await s.rest("GET", f"/channels/{destination}")))
    s.note("caller_state", (await s.ok("GET", f"/channels/{caller}"))["state"])
    await hang_up(s, "caller", "StasisEnd", reason="busy")


async def destination_busy(s: Session) -> None:
    """Trace 04b: a 486 destination: no StasisStart; the caller hears of nothing."""
    await _unreachable(s, "PJSIP/busy", 10)


async def destination_unanswered(s: Session) -> None:
    """Trace 04a: nobody answers until the originate timeout."""
    await _unreachable(s, "PJSIP/away", s.timing.ring)


async def externalmedia_slin16(s: Session) -> None:
    """Trace 08: slin16 RTP from a bridge with the caller (payload type, size, step)."""
    tap = await RtpTap().open()
    try:
        await answered_caller(s, CallerPlan(hold=None))
        await new_bridge(s, "bridge")
        await join(s, "bridge", "caller")
        await external_media(s, tap, "slin16")
        await join(s, "bridge", "externalmedia")
        await tap.wait(10)
        s.note("rtp", tap.summary())
        await hang_up(s, "externalmedia", "ChannelDestroyed")
        await hang_up(s, "caller", "StasisEnd")
        await destroy_bridge(s, "bridge")
    finally:
        tap.close()


async def websocket_drop(s: Session) -> None:
    """The events connection is cut mid-playback and comes back: what is lost, what goes on."""
    await answered_caller(s, CallerPlan(hold=None))
    playback = await play(s, "caller", LONG_SOUND)
    assert s.socket is not None
    await s.socket.drop()
    await asyncio.sleep(s.timing.settle / 3)
    s.note("stop_while_away", outcome(await s.rest("DELETE", f"/playbacks/{playback}")))
    s.note("app_while_away", await app_state(s, APP))
    await s.connect()
    await play(s, "caller", SHORT_SOUND)
    await s.expect("caller", "PlaybackFinished")
    await hang_up(s, "caller", "StasisEnd")


async def destination_cancelled(s: Session) -> None:
    """The app gives up on a destination still ringing (the caller hung up meanwhile)."""
    await answered_caller(s, CallerPlan(hold=None))
    destination = await originate(s, "PJSIP/away", ring=30)
    await s.expect("destination", "Dial")
    await hang_up(s, "destination", "ChannelDestroyed")
    s.note("destination_afterwards", outcome(await s.rest("GET", f"/channels/{destination}")))
    await hang_up(s, "caller", "StasisEnd")


async def caller_rejected(s: Session) -> None:
    """An unanswered caller hung up by the app (trace 09: SIP 603)."""
    caller = await s.caller(CallerPlan(hold=None))
    variable = f"/channels/{caller}/variable"
    for name in ("CALLERID(name)", "CALLERID(num)", "AGREE_NEVER_SET"):
        reply = await s.rest("GET", variable, variable=name)
        s.note(name, [reply.status, reply.body])
    s.note("variable_unnamed", outcome(await s.rest("GET", variable)))
    await hang_up(s, "caller", "StasisEnd")
    s.note("channel_afterwards", outcome(await s.rest("GET", f"/channels/{caller}")))


async def bridge_lifecycle(s: Session) -> None:
    """An empty bridge deleted; a bridge playback; removeChannel, re-add, continue."""
    tap = await RtpTap().open()
    try:
        await answered_caller(s, CallerPlan(hold=None))
        await new_bridge(s, "empty")
        s.note("delete_empty", outcome(await s.rest("DELETE", f"/bridges/{s.id('empty')}")))
        await new_bridge(s, "bridge")
        await join(s, "bridge", "caller")
        await external_media(s, tap, "ulaw")
        await join(s, "bridge", "externalmedia")
        await tap.wait(10)
        bridge = s.id("bridge")
        await s.ok("POST", f"/bridges/{bridge}/play", media=f"sound:{SHORT_SOUND}")
        await s.expect("bridge", "PlaybackStarted")
        await s.expect("bridge", "PlaybackFinished")
        await s.ok("POST", f"/bridges/{bridge}/removeChannel", channel=s.id("caller"))
        await s.expect("caller", "ChannelLeftBridge")
        await join(s, "bridge", "caller")
        await s.ok("POST", f"/channels/{s.id('caller')}/continue")
        await s.expect("caller", "StasisEnd")
        await hang_up(s, "externalmedia", "ChannelDestroyed")
        await destroy_bridge(s, "bridge")
    finally:
        tap.close()


async def app_state(s: Session, app: str) -> Json:
    """``GET /applications/{app}`` (its channels and bridges by role) and whether it is listed."""
    reply = await s.rest("GET", f"/applications/{app}")
    listed = [a["name"] for a in await s.ok("GET", "/applications")]
    state: Json = {"status": reply.status, "listed": app in listed}
    if reply.status == 200:
        state["channels"] = sorted(s.role(c) for c in reply.body["channel_ids"])
        state["bridges"] = sorted(s.role(b) for b in reply.body["bridge_ids"])
    return state


async def _open_and_close(s: Session, app: str) -> Json:
    sock = await s.open_socket(app, [])
    held = await app_state(s, app)
    await sock.close()
    await asyncio.sleep(s.timing.settle / 3)
    return held


async def app_listing(s: Session) -> None:
    """Which apps Asterisk lists after their websocket closed, with and without calls."""
    s.note("idle_connected", await _open_and_close(s, IDLE_APP))
    s.note("idle_closed", await app_state(s, IDLE_APP))
    await answered_caller(s, CallerPlan(hold=2 * s.timing.settle))
    await _close_with_call(s)
    s.note("reconnected", await _open_and_close(s, APP))
    s.note("closed_again", await app_state(s, APP))


async def app_listing_bridged(s: Session) -> None:
    """As :func:`app_listing`, with the call in a bridge the closed app leaves behind."""
    await answered_caller(s, CallerPlan(hold=2 * s.timing.settle))
    await new_bridge(s, "bridge")
    await join(s, "bridge", "caller")
    await _close_with_call(s)
    await s.ok("DELETE", f"/bridges/{s.id('bridge')}")
    await asyncio.sleep(s.timing.settle / 3)
    s.note("bridge_deleted", await app_state(s, APP))
    await _open_and_close(s, IDLE_APP)
    s.note("bridge_deleted_and_another_app_closed", await app_state(s, APP))
    s.note("reconnected", await _open_and_close(s, APP))
    s.note("closed_again", await app_state(s, APP))


async def _close_with_call(s: Session) -> None:
    """The app's websocket closes with the call in it; then the caller hangs up."""
    s.note("with_call", await app_state(s, APP))
    assert s.socket is not None
    await s.socket.close()
    await asyncio.sleep(s.timing.settle / 3)
    s.note("closed_with_call", await app_state(s, APP))
    await _wait_no_channels(s)
    s.note("call_ended", await app_state(s, APP))
    await _open_and_close(s, IDLE_APP)
    s.note("after_another_app_closed", await app_state(s, APP))


async def _wait_no_channels(s: Session, within: float = 30.0) -> None:
    async with asyncio.timeout(within):
        while await s.ok("GET", "/channels"):  # noqa: ASYNC110 - the PBX has no event for it
            await asyncio.sleep(0.1)


async def _attempt(s: Session, app: str = APP) -> str:
    """One (re)connect attempt: "connected", "refused", "dropped" or the HTTP refusal.

    The scenario's own app becomes its events socket; another is closed again.
    """
    try:
        if app == APP:
            await s.connect()
        else:
            await (await s.open_socket(app, [])).close()
    except aiohttp.WSServerHandshakeError as exc:
        kind = exc.headers.get("Content-Type", "") if exc.headers is not None else ""
        return f"{exc.status} {kind.split(';')[0]}".strip()
    except aiohttp.ClientConnectorError:
        return "refused"
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
        return "dropped"
    return "connected"


async def _reconnect(s: Session, within: float = 60.0) -> list[str]:
    """Attempts every 20 ms until one connects; the distinct outcomes in order."""
    seen: list[str] = []
    async with asyncio.timeout(within):
        while not seen or seen[-1] != "connected":
            result = await _attempt(s)
            if not seen or seen[-1] != result:
                seen.append(result)
            if result != "connected":
                await asyncio.sleep(0.02)
    return seen


async def restart(s: Session) -> None:
    """Trace 07: ``core restart now`` under a recorded call; the reconnect's shape."""
    tap = await RtpTap().open()
    try:
        await recorded_call(s, CallerPlan(hold=None), tap)
        restarting = asyncio.get_running_loop().create_task(s.side.restart())
        await s.expect("caller", "StasisEnd")
        ended = asyncio.get_running_loop().time()
        try:
            info = outcome(await s.rest("GET", "/asterisk/info", only="status"))
        except aiohttp.ClientError as exc:
            info = [type(exc).__name__, None]
        s.note("rest_after_stasis_end", info)
        s.note("websocket_after_stasis_end", await _attempt(s, IDLE_APP))
        assert s.socket is not None
        await s.socket.closed.wait()
        s.measured["hangup_to_drop"] = round(asyncio.get_running_loop().time() - ended, 3)
        s.note("close_code", s.socket.close_code)
        s.note("reconnect", await _reconnect(s))
        await restarting
        s.note("channels_after", await s.ok("GET", "/channels"))
        s.note("bridges_after", await s.ok("GET", "/bridges"))
        s.note("app_after", await app_state(s, APP))
    finally:
        tap.close()


SCENARIOS: dict[str, Scenario] = {
    "implied-consent": implied_consent,
    "recorder-crash": recorder_crash,
    "hangup-during-playback": hangup_during_playback,
    "dtmf-during-playback": dtmf_during_playback,
    "destination-busy": destination_busy,
    "destination-unanswered": destination_unanswered,
    "externalmedia-slin16": externalmedia_slin16,
    "websocket-drop": websocket_drop,
    "app-listing": app_listing,
    "app-listing-bridged": app_listing_bridged,
    "bridge-lifecycle": bridge_lifecycle,
    "caller-rejected": caller_rejected,
    "destination-cancelled": destination_cancelled,
    "restart": restart,
}
