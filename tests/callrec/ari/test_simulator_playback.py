"""How the simulator ends a playback, against trace 02 and trace 06.

A playback cut by the caller's hang-up ends ``failed`` between the channel's
ChannelHangupRequest and its StasisEnd (trace 02); a file Asterisk cannot
play ends ``failed`` on a channel that stays up (trace 06).
"""

from __future__ import annotations

from pathlib import Path

from callrec.ari.sim import AriSimulator, CallerScenario
from tests.callrec.ari.test_simulator import Json, RawAri, finished, of, trace_lines


def _hangup_view(events: list[Json], channel_id: str, playback_id: str) -> list[str]:
    """From PlaybackStarted on: the channel's and the playback's events, varsets aside,
    with the hang-up's cause fields and the playback's state."""
    out: list[str] = []
    for ev in events:
        if ev["type"] == "ChannelVarset":
            continue
        if ev.get("playback", {}).get("id") == playback_id:
            out.append(f"{ev['type']} {ev['playback']['state']}")
        elif ev.get("channel", {}).get("id") == channel_id:
            fields = [f"{k}={ev[k]}" for k in ("cause", "soft") if k in ev]
            out.append(" ".join([ev["type"], *fields]))
    return out[out.index("PlaybackStarted playing") :]


async def test_a_caller_hanging_up_during_a_playback_fails_it_as_in_trace_02() -> None:
    trace = trace_lines("02-hangup-during-disclosure.jsonl")
    events = [ln["event"] for ln in trace if ln["kind"] == "event"]
    expected = _hangup_view(events, "1795915779.34", "pb-02-disclosure")
    assert "PlaybackFinished failed" in expected
    async with AriSimulator(seed=2) as sim, RawAri(sim) as ari:
        cid = sim.place_call(CallerScenario(hangup_after=0.4))
        await ari.wait_event(of("StasisStart", cid))
        await ari.call("POST", f"/channels/{cid}/answer")
        query = {"media": "sound:demo-congrats", "playbackId": "pb-disclosure"}
        status, _ = await ari.call("POST", f"/channels/{cid}/play", params=query)
        assert status == 201
        await ari.wait_event(finished("pb-disclosure"))
        await ari.wait_event(of("StasisEnd", cid))
        assert _hangup_view(ari.events, cid, "pb-disclosure") == expected
        assert "ChannelDestroyed" not in ari.types_for(cid)
        assert await ari.call("GET", "/playbacks/pb-disclosure") == (
            404,
            {"message": "Playback not found"},
        )


async def test_hanging_up_a_playing_channel_through_ari_fails_its_playback() -> None:
    async with AriSimulator(seed=3) as sim, RawAri(sim) as ari:
        cid = sim.place_call(CallerScenario())
        await ari.wait_event(of("StasisStart", cid))
        await ari.call("POST", f"/channels/{cid}/answer")
        query = {"media": "sound:demo-congrats", "playbackId": "pb-1"}
        await ari.call("POST", f"/channels/{cid}/play", params=query)
        await ari.wait_event(lambda e: e["type"] == "PlaybackStarted")
        assert (await ari.call("DELETE", f"/channels/{cid}"))[0] == 204
        await ari.wait_event(of("StasisEnd", cid))
        assert _hangup_view(ari.events, cid, "pb-1") == [
            "PlaybackStarted playing",
            "ChannelHangupRequest cause=32 soft=True",
            "PlaybackFinished failed",
            "StasisEnd",
        ]


async def test_an_unreadable_sound_file_fails_on_a_channel_that_stays_up(
    tmp_path: Path,
) -> None:
    (tmp_path / "en").mkdir()
    (tmp_path / "en" / "broken.wav").write_bytes(b"RIFF\x00\x00 not a wave file")
    async with AriSimulator(sounds_dir=tmp_path, seed=4) as sim, RawAri(sim) as ari:
        cid = sim.place_call(CallerScenario())
        await ari.wait_event(of("StasisStart", cid))
        await ari.call("POST", f"/channels/{cid}/answer")
        query = {"media": "sound:broken", "playbackId": "pb-broken"}
        await ari.call("POST", f"/channels/{cid}/play", params=query)
        done = await ari.wait_event(finished("pb-broken"))
        assert done["playback"]["state"] == "failed"
        status, channel = await ari.call("GET", f"/channels/{cid}")
        assert (status, channel["state"]) == (200, "Up")
        # The channel is not held up by the failed playback: the next one plays.
        query = {"media": "sound:beep", "playbackId": "pb-beep"}
        await ari.call("POST", f"/channels/{cid}/play", params=query)
        beep = await ari.wait_event(finished("pb-beep"))
        assert beep["playback"]["state"] == "done"


async def test_fail_playback_ends_it_failed_and_leaves_the_channel_in_stasis() -> None:
    async with AriSimulator(seed=5) as sim, RawAri(sim) as ari:
        cid = sim.place_call(CallerScenario())
        await ari.wait_event(of("StasisStart", cid))
        query = {"media": "sound:demo-congrats", "playbackId": "pb-long"}
        await ari.call("POST", f"/channels/{cid}/play", params=query)
        await ari.wait_event(lambda e: e["type"] == "PlaybackStarted")
        sim.fail_playback(cid)
        done = await ari.wait_event(finished("pb-long"))
        assert done["playback"]["state"] == "failed"
        # Commands queued behind the playback run at once, not 30 s later.
        assert (await ari.call("POST", f"/channels/{cid}/answer"))[0] == 204
        assert "StasisEnd" not in ari.types_for(cid)
