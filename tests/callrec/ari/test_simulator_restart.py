"""A PBX restart as in trace 07: shutdown hang-ups, drop, refusal, 404, 503, fresh boot."""

from __future__ import annotations

import asyncio

import aiohttp

from callrec.ari.sim import AriSimulator, CallerScenario
from tests.callrec.ari.test_simulator import BASIC, RawAri, of


async def probe(sim: AriSimulator) -> str:
    """One ping on a fresh connection: "refused", the status, or "other"."""
    try:
        async with (
            aiohttp.ClientSession() as s,
            s.get(f"{sim.ari_url}/asterisk/ping", headers=BASIC) as r,
        ):
            if r.status == 503:
                assert await r.json() == {"message": "Asterisk not booted"}
                assert r.headers["Connection"] == "close"
            return str(r.status)
    except aiohttp.ClientConnectorError:
        return "refused"
    except aiohttp.ClientError:
        return "other"


def phases(outcomes: list[str]) -> list[str]:
    out: list[str] = []
    for item in outcomes:
        if not out or out[-1] != item:
            out.append(item)
    return out


async def test_restart_like_trace_07() -> None:
    async with AriSimulator() as sim:
        async with RawAri(sim) as ari:
            cid = sim.place_call(CallerScenario())
            await ari.wait_event(of("StasisStart", cid))
            await ari.call("POST", f"/channels/{cid}/answer")
            _, em = await ari.call(
                "POST",
                "/channels/externalMedia",
                params={"app": "callrec", "external_host": "127.0.0.1:9", "format": "ulaw"},
            )
            await ari.wait_event(of("StasisStart", em["id"]))
            _, br = await ari.call("POST", "/bridges", params={"type": "mixing"})
            both = f"{cid},{em['id']}"
            await ari.call("POST", f"/bridges/{br['id']}/addChannel", params={"channel": both})
            await sim.wait_for(lambda: sim.rtp_stats(em["id"]).packets_generated > 2)
            _, info = await ari.call("GET", "/asterisk/info", params={"only": "status"})
            restart = asyncio.get_running_loop().create_task(sim.restart(downtime=0.6))
            await asyncio.wait_for(ari.closed.wait(), 2)
            outcomes = []
            while not restart.done():
                outcomes.append(await probe(sim))
                await asyncio.sleep(0.03)
            await restart
            outcomes.append(await probe(sim))
            assert ari.close_code == 1006
            hangup = next(e for e in ari.events if e["type"] == "ChannelHangupRequest")
            assert (hangup["cause"], hangup["soft"]) == (4, True)
            assert ari.types_for(cid) == [
                "StasisStart",
                "ChannelStateChange",
                "ChannelEnteredBridge",
                "ChannelHangupRequest",
                "ChannelLeftBridge",
                "StasisEnd",
            ]
            # Made by ARI: destroyed too, as on the test PBX (pbx-sequences/restart.json).
            assert ari.types_for(em["id"])[-2:] == ["StasisEnd", "ChannelDestroyed"]
            sent = sim.rtp_stats(em["id"]).packets_generated
        assert phases(outcomes) == ["refused", "404", "503", "200"]
        assert sim.rtp_stats(em["id"]).packets_generated == sent  # RTP died with the PBX
        async with RawAri(sim) as again:
            assert await again.call("GET", "/channels") == (200, [])
            _, app = await again.call("GET", "/applications/callrec")
            assert (app["channel_ids"], app["bridge_ids"]) == ([], [])
            _, info2 = await again.call("GET", "/asterisk/info", params={"only": "status"})
            assert info2["status"]["startup_time"] != info["status"]["startup_time"]
            new = sim.place_call(CallerScenario())
            assert new.endswith(".0")
            await again.wait_event(of("StasisStart", new))
            await asyncio.sleep(0.05)
            assert [e["type"] for e in again.events] == ["StasisStart"]
