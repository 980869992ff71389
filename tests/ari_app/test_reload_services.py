"""A reload reaches serve's other services: the metrics endpoint, the FastAGI
gate, the log level. In-process (the app with serve's extra services) against
the simulator; ``test_reload.py`` runs the real command."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from ari_app.app import App, LevelSource
from callrec.ari.sim import CallerScenario
from callrec.cli.app_cmds import extra_services
from callrec.metrics import MetricsService
from tests.agi.test_recording import make_rig
from tests.ari_app.conftest import DISCLOSURE, Rig
from tests.callrec.test_metrics import scrape, value


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def _metrics(app: App) -> MetricsService:
    return next(s for s in app.extra_services if isinstance(s, MetricsService))


@pytest.fixture
def root_level() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    yield
    root.setLevel(level)


async def test_metrics_switched_on_by_a_reload_count_since_the_start(rig: Rig) -> None:
    config = rig.config  # no [metrics]: nothing served
    app = App(config)
    app.extra_services.extend(extra_services(config, app))
    rig.apps.append(app)
    await app.startup()
    await asyncio.wait_for(app.connected.wait(), 10)
    assert _metrics(app).url is None
    caller = rig.sim.place_call(CallerScenario(exten="100", hangup_after=DISCLOSURE / 2))
    assert (await rig.wait_audit(caller))["decision"] == "declined-hangup"

    _append(rig.config_path, '\n[metrics]\nlisten = "127.0.0.1:0"\n')
    assert await app.reload()
    url = _metrics(app).url
    assert url is not None
    samples = await scrape(url)
    assert value(samples, "callrec_calls_total", decision="declined-hangup") == 1

    text = rig.config_path.read_text()
    rig.config_path.write_text(text.replace('[metrics]\nlisten = "127.0.0.1:0"', "[metrics]"))
    assert await app.reload()
    assert _metrics(app).url is None
    with pytest.raises(aiohttp.ClientConnectionError):
        await scrape(url)


async def test_fastagi_plays_the_reloaded_disclosure(tmp_path: Path) -> None:
    rig = await make_rig(tmp_path)
    try:
        folder = rig.sounds / "en" / "callrec"
        shutil.copyfile(folder / "disclosure.wav", folder / "notice.wav")
        config = rig.config.path
        text = config.read_text().replace(
            'default_language = "en"\n', 'default_language = "en"\ndisclosure = "callrec/notice"\n'
        )
        before = await rig.agi("consent", await rig.dialplan_call())
        config.write_text(text)
        assert await rig.app.reload()
        after = await rig.agi("consent", await rig.dialplan_call())
    finally:
        await rig.app.shutdown()
        await rig.sim.stop()
    played = [[c[2] for c in m.commands if c[:2] == ["STREAM", "FILE"]] for m in (before, after)]
    assert played == [[str(folder / "disclosure")], [str(folder / "notice")]]
    lines = [x for x in rig.audit() if x["event"] == "call"]
    assert [x["evidence"]["prompt"]["id"] for x in lines] == [
        "en/callrec/disclosure",
        "en/callrec/notice",
    ]


@pytest.mark.usefixtures("root_level")
@pytest.mark.parametrize(
    ("source", "expected"), [(LevelSource.CONFIG, logging.WARNING), (LevelSource.CALLER, None)]
)
async def test_the_log_level_follows_the_config_unless_given_on_the_command_line(
    rig: Rig, source: LevelSource, expected: int | None
) -> None:
    root = logging.getLogger()
    root.setLevel(logging.DEBUG)  # as -vv would
    app = App(rig.config, level_source=source)
    rig.apps.append(app)
    await app.startup()
    await asyncio.wait_for(app.connected.wait(), 10)
    _append(rig.config_path, '\n[logging]\nlevel = "WARNING"\n')
    assert await app.reload()
    assert root.level == (logging.DEBUG if expected is None else expected)


async def test_a_reload_before_the_app_runs_is_ignored(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(rig.config)
    assert not await app.reload()
    assert "reload ignored: callrec is starting or stopping" in caplog.text
