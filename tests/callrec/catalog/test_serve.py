"""``callrec serve`` against the ARI simulator: every call reaches the catalogue as it
ends, a catalogue that is down never fails a call, ``catalog rebuild`` gives the
same listing, two recorders share one PostgreSQL catalogue, and a reload moves
the next calls to the catalogue it names."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from asyncio.subprocess import Process
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ari_app.app import App
from ari_app.demo import SIM_PASSWORD, SIM_USER, write_config
from callrec.ari.sim import AriSimulator, CallerScenario, EndpointBehaviour
from callrec.catalog import Catalog
from callrec.catalog.service import CatalogService
from callrec.config import load_config
from callrec.config_model import CatalogConfig
from callrec.recording import verify
from tests.ari_app.conftest import (
    DISCLOSURE,
    GRACE,
    NotifySocket,
    Rig,
    make_rig_files,
    serve,
    stop,
    wait_until,
)
from tests.callrec.catalog.pg import pg_schema
from tests.callrec.cli_support import run

CALLER = "+49 30 1234567"


def _set_catalog(rig: Rig, url: str, recorder_id: str) -> None:
    """Point the rig's config at another catalogue, entering as ``recorder_id``."""
    text = rig.config_path.read_text()
    text = re.sub(r"(?ms)^\[catalog\]\n.*\Z", "", text)
    text += f'[catalog]\nurl = "{url}"\nrecorder_id = "{recorder_id}"\n'
    rig.config_path.write_text(text)


@asynccontextmanager
async def _rig(out: Path) -> AsyncIterator[Rig]:
    """A simulator with an agent and a busy line, and a config for it under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    sounds, keys, voice, voice_path = make_rig_files(out)
    sim = AriSimulator(user=SIM_USER, password=SIM_PASSWORD, sounds_dir=sounds)
    await sim.start()
    sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1))
    sim.add_endpoint("PJSIP/busy", EndpointBehaviour(kind="busy", answer_after=0.1))
    try:
        dest = {"100": "PJSIP/agent", "200": "PJSIP/busy"}
        config = write_config(out, sim.url, sounds_dir=sounds, grace=GRACE, destinations=dest)
        yield Rig(sim, out, config, keys, voice, voice_path)
    finally:
        await sim.stop()


@asynccontextmanager
async def _serving(rig: Rig) -> AsyncIterator[Process]:
    notified = NotifySocket()
    try:
        proc = await serve(rig, notified)
        try:
            yield proc
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 20)
        finally:
            await stop(proc)
        assert proc.returncode == 0, rig.serve_log()[-3000:]
    finally:
        notified.close()


async def _call(rig: Rig, exten: str = "100") -> dict[str, object]:
    caller = rig.sim.place_call(CallerScenario(
        exten=exten, caller_number=CALLER, audio=rig.voice_path,
        hangup_after=DISCLOSURE + GRACE + 1.5,
    ))  # fmt: skip
    return await rig.wait_audit(caller)


async def _catalogued(url: str, calls: int, within: float = 20.0) -> None:
    def count() -> bool:
        with Catalog.open(url) as catalog:
            return len([e for e in catalog.list() if e.call]) >= calls

    await wait_until(lambda: count(), within)


def _listing(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> list[Any]:
    listed = run(capsys, "recordings", "list", "--json", "--config", config, *args)
    assert listed.code == 0, listed.err
    return [json.loads(line) for line in listed.out.splitlines()]


async def test_serve_enters_each_call_as_it_ends_and_a_rebuild_gives_the_same_listing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with _rig(tmp_path / "pbx") as rig:
        url = f"sqlite://{tmp_path / 'catalog.sqlite3'}"
        _set_catalog(rig, url, "pbx-test")
        async with _serving(rig):
            recorded = await _call(rig, "100")
            busy = await _call(rig, "200")
            await _catalogued(url, 2)
    listed = _listing(capsys, rig.config_path)
    assert [e["call"]["call_id"] for e in listed] == [recorded["channel"], busy["channel"]]
    assert {e["call"]["recorder_id"] for e in listed} == {"pbx-test"}
    (rec,) = listed[0]["recordings"]
    assert (rec["recording_id"], rec["state"]) == (recorded["recording_id"], "present")
    assert rec["uri"] == Path(str(recorded["path"])).as_uri()
    assert listed[1]["call"]["end_reason"] == "destination-unavailable"
    assert listed[1]["recordings"] == []
    assert _listing(capsys, rig.config_path, "--number", CALLER) == listed
    assert _listing(capsys, rig.config_path, "--number", "+49 30 7654321") == []

    for name in ("catalog.sqlite3", "catalog.sqlite3-wal", "catalog.sqlite3-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    rebuilt = run(capsys, "catalog", "rebuild", "--config", rig.config_path)
    assert rebuilt.code == 0, rebuilt.err
    assert "0 recording files no audit line named" in rebuilt.out
    assert _listing(capsys, rig.config_path) == listed


async def test_a_catalogue_that_is_down_never_fails_a_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with _rig(tmp_path / "pbx") as rig:
        _set_catalog(rig, "postgresql://callrec:secret-pw@127.0.0.1:1/nothing", "pbx-test")
        async with _serving(rig):
            line = await _call(rig)
            await wait_until(lambda: "catalogue unavailable" in rig.serve_log())
    assert line["decision"] == "implied"
    assert str(verify(Path(str(line["path"])), rig.keys).verdict) == "complete"
    log = rig.serve_log()
    assert "WARNING callrec.catalog.service: catalogue unavailable, calls go on" in log
    assert "secret-pw" not in log
    # The audit log kept it: a catalogue that works gets it from there.
    _set_catalog(rig, f"sqlite://{tmp_path / 'catalog.sqlite3'}", "pbx-test")
    assert run(capsys, "catalog", "rebuild", "--config", rig.config_path).code == 0
    (entry,) = _listing(capsys, rig.config_path)
    assert entry["recordings"][0]["recording_id"] == line["recording_id"]


async def test_two_recorders_share_one_postgresql_catalogue(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pg_schema() as url:
        async with AsyncExitStack() as stack:
            a = await stack.enter_async_context(_rig(tmp_path / "a"))
            b = await stack.enter_async_context(_rig(tmp_path / "b"))
            # One caller is one pseudonym only if the recorders share the pseudonym key.
            (b.out / "pseudonym.key").write_bytes((a.out / "pseudonym.key").read_bytes())
            _set_catalog(a, url, "pbx-a")
            _set_catalog(b, url, "pbx-b")
            await stack.enter_async_context(_serving(a))
            await stack.enter_async_context(_serving(b))
            first = await _call(a)
            second = await _call(b)
            await _catalogued(url, 2)
        listed = _listing(capsys, a.config_path, "--number", CALLER)
        table = run(capsys, "recordings", "list", "--config", b.config_path)
    by_recorder = {e["call"]["recorder_id"]: e for e in listed}
    assert set(by_recorder) == {"pbx-a", "pbx-b"}
    assert by_recorder["pbx-a"]["recordings"][0]["recording_id"] == first["recording_id"]
    assert by_recorder["pbx-b"]["recordings"][0]["recording_id"] == second["recording_id"]
    rows = [line for line in table.out.splitlines() if re.match(r"\d{4}-", line)]
    assert sorted(row.split()[2] for row in rows) == ["pbx-a", "pbx-b"]
    assert table.out.splitlines()[-1] == "2 call(s), 2 recording(s)"


async def test_a_reload_moves_the_next_calls_to_the_catalogue_it_names(tmp_path: Path) -> None:
    async with _rig(tmp_path / "pbx") as rig:
        first = f"sqlite://{tmp_path / 'first.sqlite3'}"
        second = f"sqlite://{tmp_path / 'second.sqlite3'}"
        _set_catalog(rig, first, "pbx-test")
        config = load_config(rig.config_path)
        app = App(config)
        service = CatalogService(config, app)
        app.extra_services.append(service)
        await app.startup()
        try:
            await asyncio.wait_for(app.connected.wait(), 10)
            before = await _call(rig)
            await _catalogued(first, 1)
            await service.reload(replace(config, catalog=CatalogConfig(second, "pbx-test")))
            after = await _call(rig)
            await _catalogued(second, 1)
        finally:
            await app.shutdown()
    with Catalog.open(first) as old, Catalog.open(second) as new:
        assert [e.call.call_id for e in old.list() if e.call] == [before["channel"]]
        assert after["channel"] in [e.call.call_id for e in new.list() if e.call]
