"""ExternalMedia refused by the PBX: the failure policy decides, nothing is lost."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from callrec.ari.sim import AriSimulator, CallerScenario, EndpointBehaviour
from callrec.failure_policy import FailurePolicy
from callrec.recording import verify

from .conftest import DISCLOSURE, GRACE, Rig, make_rig_files


@pytest.fixture
async def no_ulaw_rig(tmp_path: Path) -> Rig:
    """A PBX whose ExternalMedia cannot produce the configured format (500)."""
    from ari_app.demo import SIM_PASSWORD, SIM_USER, write_config

    sounds, keys, voice, voice_path = make_rig_files(tmp_path)
    sim = AriSimulator(
        user=SIM_USER, password=SIM_PASSWORD, sounds_dir=sounds, media_formats={"slin16"}
    )
    await sim.start()
    sim.add_endpoint("PJSIP/agent", EndpointBehaviour(kind="answer", answer_after=0.1))
    config = write_config(
        tmp_path, sim.url, sounds_dir=sounds, destinations={"100": "PJSIP/agent"}, grace=GRACE
    )
    return Rig(sim, tmp_path, config, keys, voice, voice_path)


@pytest.mark.parametrize("policy", ["best-effort", "strict"])
async def test_external_media_failure_follows_the_failure_policy(
    no_ulaw_rig: Rig, policy: FailurePolicy, caplog: pytest.LogCaptureFixture
) -> None:
    rig = no_ulaw_rig
    try:
        config = rig.config
        await rig.start_app(
            replace(config, recording=replace(config.recording, on_failure=policy))
        )
        caplog.set_level(logging.ERROR)
        caller = rig.sim.place_call(
            CallerScenario(exten="100", audio=rig.voice_path, hangup_after=DISCLOSURE + GRACE + 2)
        )
        line = await rig.wait_audit(caller)
    finally:
        for app in rig.apps:
            await app.shutdown()
        await rig.sim.stop()
    assert line["event"] == "failure"
    assert line["decision"] == "implied"
    assert "externalmedia" in line["reason"].lower().replace(" ", "")
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(caller in m for m in errors), errors
    requests = [(m, p, status) for m, p, _, status in rig.sim.request_log]
    assert any(p.endswith("/externalMedia") and status == 500 for _, p, status in requests)
    if policy == "best-effort":
        assert line["durations"].get("bridged") is not None
        assert line["end"] == "caller-hangup"
    else:
        assert line["end"] == "recording-unavailable"
        played = [
            e["playback"]["media_uri"] for e in rig.sim.events if e["type"] == "PlaybackStarted"
        ]
        assert played[-1] == "sound:callrec/recording-unavailable"
    # Nothing half-made is left as if it were a recording: whatever the writer
    # had started is either gone or reads as what it is.
    for part in rig.spool.rglob("*.crec*"):
        assert str(verify(part, rig.keys).verdict) in ("complete", "truncated")
    assert not any(ch.kind in ("snoop", "unicast") for ch in rig.sim.channels)
