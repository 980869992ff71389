"""The ARI simulator over real sockets: auth, refusals, state answers, caller ids.

Also holds the small raw-ARI client the other ``test_simulator_*`` modules
share (plain aiohttp, no callrec client: the simulator is checked against
the traces, not against our own client).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile

from callrec.ari.sim import AriSimulator, CallerScenario, DialplanStep, EndpointBehaviour
from callrec.ari.sim.model import sound_duration

TRACES = Path(__file__).resolve().parents[2] / "fixtures" / "ari-traces"
USER, PASSWORD = "callrec", "callrec-secret"
BASIC = {"Authorization": aiohttp.encode_basic_auth(USER, PASSWORD)}
Json = dict[str, Any]


def trace_lines(name: str) -> list[Json]:
    with open(TRACES / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


class RawAri:
    """An events websocket plus REST calls, recording every event it receives."""

    def __init__(self, sim: AriSimulator, app: str = "callrec") -> None:
        self.sim, self.app = sim, app
        self.events: list[Json] = []
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = asyncio.Event()
        self.close_code: int | None = None

    async def __aenter__(self) -> RawAri:
        self._session = aiohttp.ClientSession()
        query = f"app={self.app}&api_key={USER}:{PASSWORD}"
        self._ws = await self._session.ws_connect(f"{self.sim.url}/ari/events?{query}")
        self._reader = asyncio.get_running_loop().create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._reader is not None:
            self._reader.cancel()
        if self._session is not None:
            await self._session.close()

    async def _read(self) -> None:
        assert self._ws is not None
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.events.append(json.loads(msg.data))
        self.close_code = self._ws.close_code
        self.closed.set()

    async def call(
        self,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        assert self._session is not None
        url = f"{self.sim.url}{path if path.startswith('/ari') else '/ari' + path}"
        hdrs = BASIC if headers is None else headers
        async with self._session.request(method, url, params=params, headers=hdrs) as resp:
            text = await resp.text()
            body = json.loads(text) if text and resp.content_type == "application/json" else None
            return resp.status, body

    async def wait_event(self, predicate: Callable[[Json], bool], limit: float = 5.0) -> Json:
        async with asyncio.timeout(limit):
            while True:
                for ev in self.events:
                    if predicate(ev):
                        return ev
                await asyncio.sleep(0.005)

    def types_for(self, channel_id: str, *, varsets: bool = False) -> list[str]:
        return [
            e["type"]
            for e in self.events
            if (e.get("channel") or e.get("peer") or {}).get("id") == channel_id
            and (varsets or e["type"] != "ChannelVarset")
        ]


def of(kind: str, channel_id: str | None = None) -> Callable[[Json], bool]:
    def match(ev: Json) -> bool:
        chan = ev.get("channel") or ev.get("peer") or {}
        return bool(ev["type"] == kind and (channel_id is None or chan.get("id") == channel_id))

    return match


def finished(playback_id: str) -> Callable[[Json], bool]:
    def match(ev: Json) -> bool:
        return bool(ev["type"] == "PlaybackFinished" and ev["playback"]["id"] == playback_id)

    return match


@pytest.fixture
async def sim(tmp_path: Path) -> AsyncIterator[AriSimulator]:
    async with AriSimulator(sounds_dir=tmp_path / "sounds", seed=1) as s:
        s.add_endpoint("PJSIP/agent", EndpointBehaviour(answer_after=0.01))
        yield s


@pytest.fixture
async def ari(sim: AriSimulator) -> AsyncIterator[RawAri]:
    async with RawAri(sim) as client:
        yield client


async def test_rest_refuses_bad_or_missing_credentials_with_asterisks_401(
    sim: AriSimulator,
) -> None:
    async with aiohttp.ClientSession() as s:
        for headers, params in (
            ({"Authorization": aiohttp.encode_basic_auth(USER, "wrong")}, {}),
            ({}, {}),
            ({}, {"api_key": f"{USER}:wrong"}),
        ):
            async with s.get(f"{sim.ari_url}/asterisk/info", headers=headers, params=params) as r:
                assert r.status == 401
                assert await r.json() == {"message": "Authentication required"}
                assert r.headers["WWW-Authenticate"] == 'Basic realm="Asterisk REST Interface"'
                assert r.headers["Content-Type"] == "application/json"
                assert r.headers["Cache-Control"] == "no-cache, no-store"
        params = {"api_key": f"{USER}:{PASSWORD}"}
        async with s.get(f"{sim.ari_url}/asterisk/ping", params=params) as r:
            assert r.status == 200
            assert (await r.json())["ping"] == "pong"


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"app": "callrec", "api_key": f"{USER}:wrong"}, 401),
        ({"app": "callrec"}, 401),
        ({"api_key": f"{USER}:{PASSWORD}"}, 400),
        ({"app": "", "api_key": f"{USER}:{PASSWORD}"}, 400),
    ],
)
async def test_websocket_refusals_never_upgrade(
    sim: AriSimulator, query: dict[str, str], status: int
) -> None:
    async with aiohttp.ClientSession() as s:
        with pytest.raises(aiohttp.WSServerHandshakeError) as info:
            await s.ws_connect(f"{sim.url}/ari/events", params=query)
        assert info.value.status == status
        async with s.get(f"{sim.url}/ari/events", params=query) as r:
            body = await r.text()
            if status == 401:
                assert json.loads(body) == {"message": "Authentication required"}
                assert r.headers["WWW-Authenticate"] == 'Basic realm="Asterisk REST Interface"'
            else:
                assert r.headers["Content-Type"] == "text/html"
                assert "HTTP request is missing param: [app]" in body


async def test_caller_enters_stasis_like_trace_01(sim: AriSimulator, ari: RawAri) -> None:
    cid = sim.place_call(CallerScenario(exten="100", caller_name="sipp", caller_number="sipp"))
    start = await ari.wait_event(of("StasisStart", cid))
    chan = start["channel"]
    assert start["args"] == ["100"]
    assert chan["state"] == "Ring"
    assert chan["name"].startswith("PJSIP/caller-")
    assert chan["dialplan"] == {
        "context": "from-caller",
        "exten": "100",
        "priority": 2,
        "app_name": "Stasis",
        "app_data": "callrec,100",
    }
    assert start["timestamp"][-5:] == "+0000"
    assert len(start["timestamp"]) == 28
    seconds, counter = cid.split(".")
    assert seconds.isdigit()
    assert counter.isdigit()
    status, apps = await ari.call("GET", "/applications/callrec")
    assert (status, apps["channel_ids"]) == (200, [cid])


async def test_answer_event_arrives_before_the_204(sim: AriSimulator, ari: RawAri) -> None:
    cid = sim.place_call(CallerScenario())
    await ari.wait_event(of("StasisStart", cid))
    status, _ = await ari.call("POST", f"/channels/{cid}/answer")
    assert status == 204
    # No wait: the event was flushed to the socket before the reply.
    await asyncio.sleep(0.01)
    assert ari.types_for(cid) == ["StasisStart", "ChannelStateChange"]
    assert ari.events[-1]["channel"]["state"] == "Up"


async def test_hostile_caller_ids_arrive_like_trace_09(sim: AriSimulator, ari: RawAri) -> None:
    starts = [
        line["event"]["channel"]["caller"]
        for line in trace_lines("09-hostile-callerid.jsonl")
        if line["kind"] == "event" and line["event"]["type"] == "StasisStart"
    ]
    inputs: list[tuple[str | bytes, str]] = [
        ("", "+4930123456"),
        ("../../etc/passwd", "../../etc/passwd"),
        ('Robert\\"); DROP TABLE calls;-- <b>x</b>', "1234;evil=1"),
        ("ctl\x01\x07\x1bred\x7fend", "ctl"),
        ("A" * 300 + "B" * 300, "long"),
        ("Long User", "1" * 300),
        ("Jürgen Müßig", "j%C3%BCrgen"),
        (b"J\xfcrgen M\xfc\xdfig", "latin1"),
        ("Evil Caller Name", "evil"),
    ]
    assert len(starts) == len(inputs)
    for (name, number), expected in zip(inputs, starts, strict=True):
        cid = sim.place_call(CallerScenario(caller_name=name, caller_number=number))
        start = await ari.wait_event(of("StasisStart", cid))
        assert start["channel"]["caller"] == expected
        for var, key in (("CALLERID(name)", "name"), ("CALLERID(num)", "number")):
            status, body = await ari.call(
                "GET", f"/channels/{cid}/variable", params={"variable": var}
            )
            assert (status, body) == (200, {"value": expected[key]})
        assert (await ari.call("DELETE", f"/channels/{cid}"))[0] == 204
        await ari.wait_event(of("StasisEnd", cid))
        assert ari.types_for(cid) == ["StasisStart", "ChannelHangupRequest", "StasisEnd"]


async def test_raw_utf8_in_the_user_part_never_reaches_stasis(
    sim: AriSimulator, ari: RawAri
) -> None:
    assert sim.place_call(CallerScenario(caller_name="Jürgen", caller_number="jürgen")) == ""
    assert (await ari.call("GET", "/channels")) == (200, [])


async def test_dialplan_originate_runs_without_events_and_shows_in_get(
    sim: AriSimulator, ari: RawAri
) -> None:
    status, chan = await ari.call(
        "POST",
        "/channels",
        params={
            "endpoint": "PJSIP/agent",
            "context": "dialplan-test",
            "extension": "talk",
            "priority": "1",
            "callerId": "Dialplan Test <5000>",
        },
    )
    assert status == 200
    assert chan["state"] == "Down"
    assert chan["dialplan"]["app_name"] == "AppDial2"
    assert chan["caller"] == {"name": "Dialplan Test", "number": "5000"}
    await asyncio.sleep(0.3)
    status, now = await ari.call("GET", f"/channels/{chan['id']}")
    assert now["state"] == "Up"
    assert now["dialplan"] == {
        "context": "dialplan-test",
        "exten": "talk",
        "priority": 3,
        "app_name": "Playback",
        "app_data": "tt-weasels",
    }
    assert (await ari.call("DELETE", f"/channels/{chan['id']}"))[0] == 204
    assert ari.types_for(chan["id"]) == []


async def test_short_registered_dialplan_ends_the_call_and_its_snoop(
    sim: AriSimulator, ari: RawAri
) -> None:
    sim.add_dialplan("t", "x", [DialplanStep("Answer"), DialplanStep("Wait", "1", 0.3)])
    _, chan = await ari.call(
        "POST", "/channels", params={"endpoint": "PJSIP/agent", "context": "t", "extension": "x"}
    )
    await sim.wait_for(lambda: (c := sim.channel(chan["id"])) is not None and c.state == "Up")
    _, snoop = await ari.call(
        "POST",
        f"/channels/{chan['id']}/snoop",
        params={"spy": "both", "app": "callrec", "appArgs": "snoop"},
    )
    assert snoop["name"].startswith(f"Snoop/{chan['id']}-")
    assert len(snoop["name"].rsplit("-", 1)[1]) == 8
    _, br = await ari.call("POST", "/bridges", params={"type": "mixing"})
    await ari.wait_event(of("StasisStart", snoop["id"]))
    await ari.call("POST", f"/bridges/{br['id']}/addChannel", params={"channel": snoop["id"]})
    await ari.wait_event(of("StasisEnd", snoop["id"]), limit=3)
    assert ari.types_for(snoop["id"]) == [
        "StasisStart",
        "ChannelEnteredBridge",
        "ChannelLeftBridge",
        "StasisEnd",
    ]
    assert ari.types_for(chan["id"]) == []
    assert (await ari.call("GET", f"/bridges/{br['id']}"))[1]["channels"] == []


async def test_busy_agent_leg_fails_without_touching_the_caller(
    sim: AriSimulator, ari: RawAri
) -> None:
    sim.add_endpoint("PJSIP/busy", EndpointBehaviour(kind="busy", answer_after=0.05))
    cid = sim.place_call(CallerScenario())
    await ari.wait_event(of("StasisStart", cid))
    await ari.call("POST", f"/channels/{cid}/answer")
    _, agent = await ari.call(
        "POST",
        "/channels",
        params={"endpoint": "PJSIP/busy", "app": "callrec", "originator": cid, "timeout": "5"},
    )
    assert agent["connected"] == {"name": "sipp", "number": "sipp"}
    destroyed = await ari.wait_event(of("ChannelDestroyed", agent["id"]))
    assert (destroyed["cause"], destroyed["cause_txt"], destroyed["tech_cause"]) == (
        17,
        "User busy",
        486,
    )
    assert ari.types_for(agent["id"]) == [
        "Dial",
        "ChannelHangupRequest",
        "Dial",
        "ChannelDestroyed",
    ]
    hangup = next(e for e in ari.events if e["type"] == "ChannelHangupRequest")
    assert "soft" not in hangup
    assert hangup["cause"] == 17
    assert [e["dialstatus"] for e in ari.events if e["type"] == "Dial"] == ["", "BUSY"]
    assert ari.types_for(cid) == ["StasisStart", "ChannelStateChange"]
    assert (await ari.call("GET", f"/channels/{agent['id']}"))[0] == 404


async def test_absent_or_unknown_endpoints_fail_allocation(sim: AriSimulator, ari: RawAri) -> None:
    sim.add_endpoint("PJSIP/gone", EndpointBehaviour(kind="absent"))
    for endpoint in ("PJSIP/gone", "PJSIP/nobody", "Local/999@nowhere", "SIP/x"):
        status, body = await ari.call(
            "POST", "/channels", params={"endpoint": endpoint, "app": "callrec"}
        )
        assert (status, body) == (500, {"error": "Allocation failed"})


async def test_local_endpoint_with_registered_behaviour_enters_stasis(
    sim: AriSimulator, ari: RawAri
) -> None:
    sim.add_endpoint("Local/100@internal", EndpointBehaviour(answer_after=0.01))
    _, chan = await ari.call(
        "POST",
        "/channels",
        params={"endpoint": "Local/100@internal", "app": "callrec", "appArgs": "dest"},
    )
    assert chan["name"] == "Local/100@internal-00000000;1"
    start = await ari.wait_event(of("StasisStart", chan["id"]))
    assert start["args"] == ["dest"]


async def test_playback_blocks_later_commands_until_it_ends(
    sim: AriSimulator, ari: RawAri
) -> None:
    cid = sim.place_call(CallerScenario())
    await ari.wait_event(of("StasisStart", cid))
    _, br = await ari.call("POST", "/bridges", params={"type": "mixing"})
    _, pb = await ari.call("POST", f"/channels/{cid}/play", params={"media": "sound:beep"})
    await ari.call("POST", f"/bridges/{br['id']}/addChannel", params={"channel": cid})
    order = [e["type"] for e in ari.events if e["type"] != "ChannelVarset"]
    assert order.index("PlaybackFinished") < order.index("ChannelEnteredBridge")
    assert (await ari.call("GET", f"/playbacks/{pb['id']}"))[0] == 404


def test_sound_lengths_come_from_the_sounds_dir_with_english_fallback(tmp_path: Path) -> None:
    (tmp_path / "en").mkdir()
    soundfile.write(tmp_path / "en" / "short.wav", np.zeros(800, dtype=np.int16), 8000)
    assert sound_duration(tmp_path, "short", "de") == pytest.approx(0.1)
    assert sound_duration(tmp_path, "hello-world", "en") == pytest.approx(1.40)
    assert sound_duration(tmp_path, "missing", "en") is None
    assert sound_duration(None, str(tmp_path / "en" / "short"), "en") == pytest.approx(0.1)


async def test_playback_of_a_file_in_the_sounds_dir_is_done_and_a_missing_one_failed(
    tmp_path: Path,
) -> None:
    (tmp_path / "de").mkdir(parents=True)
    soundfile.write(tmp_path / "de" / "short.wav", np.zeros(800, dtype=np.int16), 8000)
    async with AriSimulator(sounds_dir=tmp_path) as sim, RawAri(sim) as ari:
        cid = sim.place_call(CallerScenario(language="de"))
        await ari.wait_event(of("StasisStart", cid))
        for media, state in (("sound:short", "done"), ("sound:missing", "failed")):
            _, pb = await ari.call("POST", f"/channels/{cid}/play", params={"media": media})
            assert pb["language"] == "de"
            done = await ari.wait_event(finished(pb["id"]))
            assert done["playback"]["state"] == state


async def test_variables_set_and_read_back(sim: AriSimulator, ari: RawAri) -> None:
    cid = sim.place_call(CallerScenario())
    await ari.wait_event(of("StasisStart", cid))
    path = f"/channels/{cid}/variable"
    assert (await ari.call("POST", path, params={"variable": "X", "value": "1"}))[0] == 204
    assert await ari.call("GET", path, params={"variable": "X"}) == (200, {"value": "1"})
    assert (await ari.call("GET", path, params={"variable": "NOPE"}))[0] == 404
    varset = await ari.wait_event(lambda e: e.get("variable") == "X")
    assert varset["value"] == "1"


async def test_info_shows_startup_time_and_filters(sim: AriSimulator, ari: RawAri) -> None:
    status, info = await ari.call("GET", "/asterisk/info", params={"only": "status"})
    assert status == 200
    assert list(info) == ["status"]
    assert info["status"]["startup_time"].endswith("+0000")
    status, full = await ari.call("GET", "/asterisk/info")
    assert {"build", "system", "config", "status"} <= set(full)


async def test_parameters_may_come_as_a_json_body(sim: AriSimulator, ari: RawAri) -> None:
    async with aiohttp.ClientSession(headers=BASIC) as s:
        url = f"{sim.ari_url}/channels"
        body = {"endpoint": "PJSIP/agent", "app": "callrec", "variables": {"CALLREC_ID": "r1"}}
        async with s.post(url, json=body) as r:
            chan = await r.json()
        async with s.get(f"{url}/{chan['id']}/variable", params={"variable": "CALLREC_ID"}) as r:
            assert await r.json() == {"value": "r1"}
        async with s.post(
            url, data=b"{not json", headers={"Content-Type": "application/json"}
        ) as r:
            assert r.status == 400
    assert ("POST", "/ari/channels", {}, 200) in sim.request_log


async def test_caller_abandons_before_answer(sim: AriSimulator, ari: RawAri) -> None:
    cid = sim.place_call(CallerScenario(abandon_after=0.05))
    await ari.wait_event(of("StasisEnd", cid))
    assert ari.types_for(cid) == ["StasisStart", "ChannelHangupRequest", "StasisEnd"]
    assert "cause" not in next(e for e in ari.events if e["type"] == "ChannelHangupRequest")
    assert (await ari.call("POST", f"/channels/{cid}/answer"))[0] == 404
