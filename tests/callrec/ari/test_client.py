"""AriClient REST calls against a small real aiohttp server on 127.0.0.1.

The server answers with bodies copied from the Asterisk 22 traces, so the
typed models and the error mapping are checked against what Asterisk sends.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from callrec.ari.client import AriClient
from callrec.errors import AriAuthError, AriConflict, AriError, AriNotFound, AriUnavailable

TRACES = Path(__file__).resolve().parents[2] / "fixtures" / "ari-traces"
PASSWORD = "callrec-secret"


def trace_lines(name: str) -> list[dict[str, Any]]:
    with open(TRACES / name, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def trace_response(name: str, method: str, path_part: str) -> tuple[int, Any]:
    """Status and body of the first response to a matching request in a trace."""
    lines = trace_lines(name)
    for i, line in enumerate(lines):
        if (
            line["kind"] == "request"
            and line["method"] == method
            and line["path"].endswith(path_part)
        ):
            for resp in lines:
                if resp["kind"] == "response" and resp.get("for_request") == i:
                    return int(resp["status"]), resp["body"]
    raise AssertionError(f"no {method} {path_part} in {name}")


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    auth: str
    body: Any


@dataclass
class FakeAri:
    """Scripted REST answers keyed by (method, path); records every request."""

    answers: dict[tuple[str, str], tuple[int, Any]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.seen.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                request.headers.get("Authorization", ""),
                body,
            )
        )
        status, reply = self.answers.get((request.method, request.path), (404, None))
        if reply is None and status == 404:
            reply = {"message": "Resource not found"}
        if reply is None:
            return web.Response(status=status)
        if isinstance(reply, str):
            return web.Response(status=status, text=reply, content_type="text/html")
        return web.json_response(reply, status=status)


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeAri, AriClient]]:
    ari = FakeAri()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ari.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = AriClient(f"http://127.0.0.1:{port}/ari/", "callrec", PASSWORD, "callrec")
    yield ari, client
    await client.close()
    await runner.cleanup()


async def test_answer_posts_with_basic_auth(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.answers["POST", "/ari/channels/1795915759.31/answer"] = (204, None)
    await client.answer("1795915759.31")
    expected = "Basic " + base64.b64encode(f"callrec:{PASSWORD}".encode()).decode()
    assert ari.seen[-1].auth == expected
    assert ari.seen[-1].query == {}


async def test_originate_puts_every_parameter_in_the_query(
    fake: tuple[FakeAri, AriClient],
) -> None:
    ari, client = fake
    ari.answers["POST", "/ari/channels"] = trace_response(
        "01-consent-implied.jsonl", "POST", "/ari/channels"
    )
    chan = await client.originate(
        "PJSIP/agent", app="callrec", app_args="agent", timeout=30, caller_id="callrec <100>"
    )
    assert ari.seen[-1].query == {
        "endpoint": "PJSIP/agent",
        "app": "callrec",
        "appArgs": "agent",
        "timeout": "30",
        "callerId": "callrec <100>",
    }
    assert ari.seen[-1].body is None
    assert (chan.id, chan.state, chan.name) == ("1795915762.32", "Down", "PJSIP/agent-0000001e")
    assert chan.dialplan.app_name == "AppDial2"
    assert chan.rtp_address is None
    assert chan.rtp_port is None


async def test_originate_variables_go_in_the_json_body(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.answers["POST", "/ari/channels"] = trace_response(
        "01-consent-implied.jsonl", "POST", "/ari/channels"
    )
    await client.originate(
        "PJSIP/agent", app="callrec", originator="1.2", variables={"CALLREC": "1"}
    )
    assert ari.seen[-1].query == {"endpoint": "PJSIP/agent", "app": "callrec", "originator": "1.2"}
    assert ari.seen[-1].body == {"variables": {"CALLREC": "1"}}


async def test_external_media_exposes_the_rtp_source(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.answers["POST", "/ari/channels/externalMedia"] = trace_response(
        "01-consent-implied.jsonl", "POST", "externalMedia"
    )
    chan = await client.external_media(
        app="callrec", external_host="127.0.0.1:40010", format="ulaw"
    )
    assert ari.seen[-1].query == {
        "app": "callrec",
        "external_host": "127.0.0.1:40010",
        "format": "ulaw",
        "encapsulation": "rtp",
        "transport": "udp",
    }
    assert (chan.rtp_address, chan.rtp_port) == ("127.0.0.1", 17786)
    assert chan.name.startswith("UnicastRTP/")


async def test_play_list_is_comma_joined_and_typed(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    status, body = trace_response("06-errors.jsonl", "POST", "/play")
    ari.answers["POST", "/ari/channels/1795915850.46/play"] = (
        201,
        {
            "id": "b5491e6f",
            "media_uri": "sound:beep",
            "next_media_uri": "sound:no-such-sound-file",
            "target_uri": "channel:1795915850.46",
            "language": "en",
            "state": "queued",
        },
    )
    pb = await client.play(
        "1795915850.46", ["sound:beep", "sound:no-such-sound-file"], playback_id="pb-1"
    )
    assert ari.seen[-1].query == {
        "media": "sound:beep,sound:no-such-sound-file",
        "playbackId": "pb-1",
    }
    assert (pb.state, pb.next_media_uri, pb.channel_id) == (
        "queued",
        "sound:no-such-sound-file",
        "1795915850.46",
    )
    assert status == 404
    assert body == {"message": "Channel not found"}


async def test_bridge_calls(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.answers["POST", "/ari/bridges"] = trace_response(
        "05-snoop-dialplan-call.jsonl", "POST", "/ari/bridges"
    )
    bridge = await client.create_bridge(name="snoop-05")
    assert ari.seen[-1].query == {"type": "mixing", "name": "snoop-05"}
    assert (bridge.technology, bridge.channels) == ("simple_bridge", ())
    path = f"/ari/bridges/{bridge.id}"
    ari.answers["POST", path + "/addChannel"] = (204, None)
    ari.answers["POST", path + "/removeChannel"] = (204, None)
    ari.answers["DELETE", path] = (204, None)
    await client.add_channels(bridge.id, ["1.1", "1.2"])
    assert ari.seen[-1].query == {"channel": "1.1,1.2"}
    await client.remove_channel(bridge.id, "1.2")
    assert ari.seen[-1].query == {"channel": "1.2"}
    await client.destroy_bridge(bridge.id)
    assert ari.seen[-1].method == "DELETE"


async def test_variables_snoop_and_hangup(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.answers["GET", "/ari/channels/c1/variable"] = (
        200,
        {"value": "ctl\u0001\u0007\u001bred\u007fend"},
    )
    assert await client.get_variable("c1", "CALLERID(name)") == "ctl\x01\x07\x1bred\x7fend"
    assert ari.seen[-1].query == {"variable": "CALLERID(name)"}
    ari.answers["POST", "/ari/channels/c1/variable"] = (204, None)
    await client.set_variable("c1", "X", "y")
    assert ari.seen[-1].query == {"variable": "X", "value": "y"}
    ari.answers["POST", "/ari/channels/c1/snoop"] = trace_response(
        "05-snoop-dialplan-call.jsonl", "POST", "/snoop"
    )
    snoop = await client.snoop("c1", app="callrec", app_args="snoop")
    assert ari.seen[-1].query == {
        "spy": "both",
        "whisper": "none",
        "app": "callrec",
        "appArgs": "snoop",
    }
    assert snoop.name.startswith("Snoop/")
    ari.answers["DELETE", "/ari/channels/c1"] = (204, None)
    await client.hangup("c1", reason="normal")
    assert (ari.seen[-1].method, ari.seen[-1].query) == ("DELETE", {"reason": "normal"})


async def test_reconnect_probes(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    for name, method, part in [
        ("07-reconnect.jsonl", "GET", "/applications/callrec"),
        ("07-reconnect.jsonl", "GET", "/asterisk/info"),
    ]:
        status, body = trace_response(name, method, part)
        ari.answers[method, part if part.startswith("/ari") else "/ari" + part] = (status, body)
    ari.answers["GET", "/ari/channels"] = (200, [])
    app = await client.get_application()
    assert (app.name, app.channel_ids) == ("callrec", ())
    info = await client.asterisk_info()
    assert ari.seen[-1].query == {"only": "status"}
    assert info.startup_time == "2026-11-29T01:27:41.661+0000"
    assert await client.list_channels() == []


ERRORS = [
    # (status, body, error class, message) as Asterisk 22 sends them (trace 06)
    (404, {"message": "Channel not found"}, AriNotFound, "Channel not found"),
    (400, {"message": "Channel not found"}, AriError, "Channel not found"),
    (409, {"message": "Channel not in Stasis application"}, AriConflict, "Channel not in"),
    (422, {"message": "Channel not in Stasis application"}, AriConflict, "Channel not in"),
    (500, {"error": "Allocation failed"}, AriError, "Allocation failed"),
    (500, {"message": "Failed to queue media for playback"}, AriError, "Failed to queue"),
    (401, {"message": "Authentication required"}, AriAuthError, "Authentication required"),
    (400, "<html><body>Bad request</body></html>", AriError, "<html>"),
]


@pytest.mark.parametrize(("status", "body", "kind", "message"), ERRORS)
async def test_error_statuses_map_to_classes(
    fake: tuple[FakeAri, AriClient],
    status: int,
    body: Any,
    kind: type[AriError],
    message: str,
) -> None:
    ari, client = fake
    ari.answers["POST", "/ari/channels/c9/answer"] = (status, body)
    with pytest.raises(AriError) as info:
        await client.answer("c9")
    assert type(info.value) is kind
    assert info.value.status == status
    assert info.value.message.startswith(message)
    assert info.value.path == "/channels/c9/answer"
    assert PASSWORD not in str(info.value)


async def test_503_not_booted_is_unavailable(fake: tuple[FakeAri, AriClient]) -> None:
    ari, client = fake
    ari.answers["GET", "/ari/asterisk/ping"] = (503, {"message": "Asterisk not booted"})
    with pytest.raises(AriUnavailable, match="Asterisk not booted"):
        await client.ping()


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with AriClient(f"http://127.0.0.1:{port}", "callrec", PASSWORD, "callrec") as client:
        with pytest.raises(AriUnavailable) as info:
            await client.get_channel("x")
    assert PASSWORD not in str(info.value)
    assert PASSWORD not in repr(client)
