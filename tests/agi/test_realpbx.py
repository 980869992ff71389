"""The AGI mode against a real Asterisk, with sipp callers (``realpbx``; skipped without one).

Besides the PBX of docs/OPERATIONS.md section 6 (``CALLREC_TEST_ARI_URL``,
``CALLREC_TEST_SIP_TARGET``, ARI user and prompts), set
``CALLREC_TEST_AGI_EXTEN`` to an extension of the caller's context that
hands the call to the FastAGI server this test starts on this host
(``CALLREC_TEST_AGI_PORT``, default 4573) and then keeps the call up, e.g.::

    exten => 300,1,Answer()
     same => n,AGI(agi://127.0.0.1:4573/consent,${EXTEN})
     same => n,Wait(60)
     same => n,Hangup()

The server runs with ``record_after_consent``, so each call has one audit
line, checked by the ``callrec testcall`` harness: decision, prompt hash,
recording present, verifying, and following the audio sipp sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import soundfile as sf

from agi.fastagi import AgiService
from ari_app.app import App
from callrec.config import AgiConfig, load_config
from callrec.media.signals import speech_like
from callrec.testcall.harness import Options, run_scenario
from callrec.testcall.scenarios import builtin_scenarios
from callrec.testcall.sipp import SippError, find_sipp
from tests.agi.conftest import write_config_files

pytestmark = pytest.mark.realpbx

ARI_URL = os.environ.get("CALLREC_TEST_ARI_URL", "")
SIP_TARGET = os.environ.get("CALLREC_TEST_SIP_TARGET", "")
AGI_EXTEN = os.environ.get("CALLREC_TEST_AGI_EXTEN", "")
SOUNDS = Path(os.environ.get("CALLREC_TEST_SOUNDS_DIR", "/var/lib/asterisk/sounds"))


def _needs_pbx() -> None:
    if not (ARI_URL and SIP_TARGET and AGI_EXTEN):
        pytest.skip("set CALLREC_TEST_ARI_URL, CALLREC_TEST_SIP_TARGET, CALLREC_TEST_AGI_EXTEN")
    try:
        find_sipp()
    except SippError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(str(exc))
        pytest.skip(str(exc))


@dataclasses.dataclass
class PbxRig:
    options: Options
    disclosure: float
    grace: float


@pytest.fixture
async def pbx(tmp_path: Path) -> AsyncIterator[PbxRig]:
    _needs_pbx()
    user = os.environ.get("CALLREC_TEST_ARI_USER", "callrec")
    password = os.environ.get("CALLREC_TEST_ARI_PASSWORD", "callrec-secret")
    grace = 1.0
    ari = f'url = "{ARI_URL}"\nuser = "{user}"\npassword = "{password}"'
    files = write_config_files(tmp_path, sounds=SOUNDS, grace=grace, languages=("en",), ari=ari)
    config = load_config(files.config)
    port = int(os.environ.get("CALLREC_TEST_AGI_PORT", "4573"))
    config = dataclasses.replace(config, agi=AgiConfig("127.0.0.1", port, True))
    app = App(config)
    app.extra_services.append(AgiService(config, lambda: app.ctx))
    await app.startup()
    await asyncio.wait_for(app.connected.wait(), 10)
    prompt = config.prompt_for(AGI_EXTEN, "en", "disclosure").path_wav
    options = Options(
        target=SIP_TARGET,
        exten=AGI_EXTEN,
        spool=config.recording.spool,
        audit_log=config.privacy.audit_log,
        keys=[files.key],
        audio=speech_like(20.0, seed=5),
    )
    try:
        yield PbxRig(options, float(sf.info(str(prompt)).duration), grace)
    finally:
        await app.shutdown()


@pytest.mark.parametrize("name", ["stay", "hangup", "optout"])
async def test_agi_consent_and_snoop_recording_on_a_real_pbx(pbx: PbxRig, name: str) -> None:
    scenarios = builtin_scenarios(
        disclosure=pbx.disclosure,
        grace=pbx.grace,
        hangup_at=pbx.disclosure / 2,
        digit_at=pbx.disclosure / 2,
        optout_digit="2",
        talk=4.0,
        long_talk=20.0,
    )
    report = await run_scenario(scenarios[name], pbx.options)
    failed = [f"{c.name}: {c.detail}" for c in report.checks if not c.ok]
    assert report.ok, failed
