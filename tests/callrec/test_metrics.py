"""Prometheus metrics: scraped over real HTTP while the simulator places calls.

The app runs with the services ``callrec serve`` gives it (``extra_services``),
so the endpoint scraped here is the one an admin's Prometheus scrapes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ari_app.app import App
from ari_app.demo import write_prompts
from callrec.ari.sim import CallerScenario
from callrec.audit import AuditLog, audit_record, read_audit
from callrec.cli.app_cmds import extra_services
from callrec.config import Config, MetricsConfig, check_config, load_config
from callrec.metrics import Metrics, MetricsService
from tests.ari_app.conftest import (
    DISCLOSURE,
    GRACE,
    NotifySocket,
    Rig,
    serve,
    stop,
    wait_until,
)
from tests.ari_app.conftest import rig as ari_rig  # noqa: F401 (the fixture below uses it)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def rig(ari_rig: Rig) -> Rig:  # noqa: F811 (the simulator rig of tests/ari_app)
    return ari_rig


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return parse(await response.text())


async def start_serving(rig: Rig, config: Config | None = None) -> tuple[App, str]:
    """The app with serve's extra services and metrics on a free loopback port."""
    config = config or replace(rig.config, metrics=MetricsConfig("127.0.0.1", 0))
    app = App(config)
    app.extra_services.extend(extra_services(config, app))
    rig.apps.append(app)
    rig.app = app
    await app.startup()
    await asyncio.wait_for(app.connected.wait(), 10)
    url = next(s.url for s in app.extra_services if isinstance(s, MetricsService))
    assert url is not None
    return app, url


async def scrape_until(url: str, probe: Callable[[Samples], bool]) -> Samples:
    """Scrape until ``probe`` holds (TimeoutError after 20 s)."""
    async with asyncio.timeout(20):
        while True:
            samples = await scrape(url)
            if probe(samples):
                return samples
            await asyncio.sleep(0.05)


def _recording_up(rig: Rig) -> bool:
    return any(ch.kind == "unicast" and ch.bridge_id for ch in rig.sim.channels)


async def test_calls_recordings_and_packets_are_counted_as_the_audit_says(rig: Rig) -> None:
    _, url = await start_serving(rig)
    before = await scrape(url)
    assert value(before, "callrec_ari_websocket_up") == 1
    assert value(before, "callrec_calls_total", decision="implied") == 0

    recorded = rig.sim.place_call(
        CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 3.0)
    )
    declined = rig.sim.place_call(CallerScenario(exten="100", hangup_after=DISCLOSURE / 2))
    await rig.wait_audit(declined)
    await wait_until(lambda: _recording_up(rig))
    during = await scrape(url)
    assert value(during, "callrec_calls_active") == 1
    assert value(during, "callrec_recordings_active") == 1

    line = await rig.wait_audit(recorded)
    after = await scrape(url)
    assert value(after, "callrec_calls_total", decision="implied") == 1
    assert value(after, "callrec_calls_total", decision="declined-hangup") == 1
    assert value(after, "callrec_calls_total", decision="declined-dtmf") == 0
    assert value(after, "callrec_calls_ended_total", reason="caller-hangup") == 2
    assert value(after, "callrec_audit_lines_total", event="call") == 2
    assert value(after, "callrec_recordings_sealed_total") == 1
    assert value(after, "callrec_recordings_failed_total") == 0
    assert value(after, "callrec_calls_active") == 0
    assert value(after, "callrec_recordings_active") == 0
    packets = line["packets"]
    assert packets["received"] > 0
    for name in ("received", "lost", "foreign", "late"):
        assert value(after, f"callrec_rtp_packets_{name}_total") == packets[name], name
    assert value(after, "callrec_rtp_gap_seconds_total") == pytest.approx(
        line["durations"]["gaps"]
    )
    assert value(after, "callrec_seal_duration_seconds_count") == 1
    assert value(after, "callrec_seal_duration_seconds_sum") == pytest.approx(
        line["durations"]["seal"]
    )
    # The recording was open for seconds: the spool syncer synced it.
    assert value(after, "callrec_fsync_duration_seconds_count") >= 1


async def test_spool_room_is_read_at_each_scrape(rig: Rig) -> None:
    _, url = await start_serving(rig)
    samples = await scrape(url)
    fs = os.statvfs(rig.spool)
    assert value(samples, "callrec_spool_size_bytes") == fs.f_blocks * fs.f_frsize
    assert 0 < value(samples, "callrec_spool_free_bytes") <= fs.f_blocks * fs.f_frsize


async def test_a_disclosure_that_cannot_be_played_counts_as_a_failed_prompt_and_recording(
    rig: Rig,
) -> None:
    config = replace(rig.config, metrics=MetricsConfig("127.0.0.1", 0))
    (rig.out / "sounds" / "en" / "callrec" / "disclosure.wav").unlink()
    _, url = await start_serving(rig, config)
    caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=2.0))
    await rig.wait_audit(caller)
    samples = await scrape(url)
    assert value(samples, "callrec_prompt_playbacks_failed_total", prompt="disclosure") == 1
    assert value(samples, "callrec_prompt_playbacks_failed_total", prompt="not_available") == 0
    assert value(samples, "callrec_recordings_failed_total") == 1
    assert value(samples, "callrec_calls_total", decision="none") == 1
    assert value(samples, "callrec_recordings_sealed_total") == 0


async def test_a_not_available_prompt_that_cannot_be_played_is_named_and_counted(
    rig: Rig,
) -> None:
    """A busy destination, and the prompt that should say so is missing: silence, then BYE."""
    config = replace(rig.config, metrics=MetricsConfig("127.0.0.1", 0))
    (rig.out / "sounds" / "en" / "callrec" / "not-available.wav").unlink()
    _, url = await start_serving(rig, config)
    caller = rig.sim.place_call(CallerScenario(exten="200", hangup_after=DISCLOSURE + GRACE + 8))
    line = await rig.wait_audit(caller)
    assert line["end"] == "destination-unavailable"
    assert line["announcement_failure"] == {"prompt": "not_available", "reason": "playback failed"}
    samples = await scrape(url)
    assert value(samples, "callrec_prompt_playbacks_failed_total", prompt="not_available") == 1
    assert value(samples, "callrec_prompt_playbacks_failed_total", prompt="disclosure") == 0
    assert value(samples, "callrec_calls_total", decision="implied") == 1


async def test_a_caller_hanging_up_during_the_not_available_prompt_is_no_prompt_failure(
    rig: Rig,
) -> None:
    """The cut playback ends as failed (trace 02); that was the caller, not the prompt."""
    write_prompts(rig.out / "sounds", {"disclosure": DISCLOSURE, "not-available": 6.0})
    config = replace(rig.config, metrics=MetricsConfig("127.0.0.1", 0))
    _, url = await start_serving(rig, config)
    # The 6 s prompt starts after the disclosure, the grace and the busy answer (0.1 s).
    caller = rig.sim.place_call(CallerScenario(exten="200", hangup_after=DISCLOSURE + GRACE + 2))
    line = await rig.wait_audit(caller)
    [cut] = [
        e["playback"]
        for e in rig.sim.events
        if e["type"] == "PlaybackFinished"
        and e["playback"]["media_uri"] == "sound:callrec/not-available"
    ]
    assert cut["state"] == "failed"  # the caller hung up while it played
    assert line["end"] == "destination-unavailable" and "announcement_failure" not in line
    samples = await scrape(url)
    assert value(samples, "callrec_prompt_playbacks_failed_total", prompt="not_available") == 0


async def test_websocket_down_during_a_pbx_restart_and_one_reconnect_after(rig: Rig) -> None:
    app, url = await start_serving(rig)
    samples = await scrape(url)
    assert value(samples, "callrec_ari_reconnects_total") == 0

    restart = asyncio.create_task(rig.sim.restart(downtime=1.0))
    await scrape_until(url, lambda s: value(s, "callrec_ari_websocket_up") == 0)
    await restart
    await wait_until(lambda: app.connections == 2)
    samples = await scrape(url)
    assert value(samples, "callrec_ari_websocket_up") == 1
    assert value(samples, "callrec_ari_reconnects_total") == 1


async def test_a_metrics_port_in_use_is_an_error_in_the_log_and_calls_go_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = replace(rig.config, metrics=MetricsConfig("127.0.0.1", port))
        app = App(config)
        app.extra_services.extend(extra_services(config, app))
        rig.apps.append(app)
        with caplog.at_level(logging.ERROR, logger="callrec.metrics"):
            await app.startup()
        await asyncio.wait_for(app.connected.wait(), 10)
        caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=DISCLOSURE / 2))
        assert (await rig.wait_audit(caller))["decision"] == "declined-hangup"
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(f"cannot listen on 127.0.0.1:{port}" in m for m in errors), errors


async def test_callrec_serve_serves_metrics_until_it_stops(rig: Rig) -> None:
    with rig.config_path.open("a") as f:
        f.write('\n[metrics]\nlisten = "127.0.0.1:0"\n')
    notified = NotifySocket()
    try:
        proc = await serve(rig, notified)
    finally:
        notified.close()
    try:
        found = await wait_until(lambda: re.search(r"metrics served at (\S+)", rig.serve_log()))
        url = found.group(1)
        assert value(await scrape(url), "callrec_ari_websocket_up") == 1
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        await stop(proc)
    assert proc.returncode == 0, rig.serve_log()[-3000:]
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(url)


def test_an_agi_call_is_one_call_whose_recording_line_brings_the_packets(
    tmp_path: Path,
) -> None:
    """The classic dialplan writes a consent line, then a recording line."""
    log = AuditLog(tmp_path / "audit.jsonl", [])
    metrics = Metrics()
    log.listeners.append(metrics.observe_audit)
    log.append(audit_record("call", decision="implied", stage="consent", call_id="c1"))
    packets = {"received": 150, "lost": 2, "foreign": 1, "late": 0}
    log.append(
        audit_record(
            "call", decision="implied", stage="recording", packets=packets, sealed=True,
            durations={"gaps": 0.04, "seal": 0.01},
        )
    )  # fmt: skip
    samples = parse(metrics.text().decode())
    assert value(samples, "callrec_calls_total", decision="implied") == 1
    assert value(samples, "callrec_recordings_sealed_total") == 1
    assert value(samples, "callrec_rtp_packets_received_total") == 150
    assert value(samples, "callrec_rtp_packets_lost_total") == 2
    assert value(samples, "callrec_rtp_gap_seconds_total") == pytest.approx(0.04)


def test_a_failing_listener_never_stops_the_audit_trail(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", [])

    def broken(line: object) -> None:
        raise ValueError("bug")

    log.listeners.append(broken)
    log.append(audit_record("service", reason="start"))
    assert [line["event"] for line in read_audit(log.path)] == ["service"]
    assert any("audit listener" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ('listen = "127.0.0.1:9464"', MetricsConfig("127.0.0.1", 9464)),
        ('listen = "[::1]:9464"', MetricsConfig("::1", 9464)),
        ('listen = ""', MetricsConfig()),
        ("", MetricsConfig()),
    ],
)
def test_metrics_listen_is_host_port_or_off(
    tmp_path: Path, listen: str, expected: MetricsConfig
) -> None:
    path = _config_with(tmp_path, listen)
    config = load_config(path, env={}, sections=("metrics",))
    assert config.metrics == expected
    assert config.metrics.enabled == bool(expected.host)


@pytest.mark.parametrize("bad", ["9464", "localhost", "127.0.0.1:99999", "http://x:1", "a b:1"])
def test_check_config_names_a_bad_metrics_listen(tmp_path: Path, bad: str) -> None:
    path = _config_with(tmp_path, f'listen = "{bad}"')
    problems = [p for p in check_config(path, env={}) if p.key == "metrics.listen"]
    assert len(problems) == 1
    assert f"must be host:port or empty, not {bad!r}" in str(problems[0])
    assert "127.0.0.1:9464" in str(problems[0])


def _config_with(folder: Path, listen: str) -> Path:
    path = folder / "callrec.toml"
    path.write_text(f"[metrics]\n{listen}\n", encoding="utf-8")
    return path
