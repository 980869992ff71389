"""The simulator agrees with the real PBX: one scenario script, both PBXs, equal sequences.

Each scenario of :mod:`tests.callrec.ari.agreement_scenarios` runs first
against the test Asterisk (a sipp caller dialling ``agree``, which
tests/pbx/conf sends to ``Stasis(callrec-agree)``) and then against the
simulator, with identical ARI requests; the normalised per-channel event
sequences and the REST notes must be equal. The real PBX's result must also
still be the pinned copy in ``tests/fixtures/pbx-sequences/`` that the plain
test run checks the simulator against (``CALLREC_RECORD_SEQUENCES=1``
rewrites it from the PBX).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from callrec.media.signals import speech_like
from callrec.testcall import pcap
from callrec.testcall.harness import caller_audio
from callrec.testcall.sipp import SippCall, SippResult, place_call
from tests.callrec.ari.agreement import (
    CALLER_NAME,
    CALLER_NUMBER,
    EXTEN,
    REAL,
    RECORD_ENV,
    CallerPlan,
    Json,
    differences,
    load_fixture,
    record,
    save_fixture,
    simulator,
    write_sounds,
)
from tests.callrec.ari.agreement_scenarios import SCENARIOS

from .conftest import Agents, Pbx, wait_until

pytestmark = pytest.mark.realpbx
logger = logging.getLogger(__name__)

# A caller that stays until the scenario hangs it up (sipp's own hold, to be safe).
STAYS = 60.0


class RealSide:
    """The test PBX as a :class:`~tests.callrec.ari.agreement.Side`: sipp callers, the CLI."""

    def __init__(self, pbx: Pbx, work: Path) -> None:
        self.pbx, self.work = pbx, work
        self.ari_url, self.user, self.password = pbx.ari_url, pbx.user, pbx.password
        self.calls: list[asyncio.Task[SippResult]] = []

    async def place_caller(self, plan: CallerPlan) -> None:
        hold = STAYS if plan.hold is None else plan.hold
        work = self.work / f"caller{len(self.calls)}"
        work.mkdir(parents=True)
        dtmf = [] if plan.digit_at is None else [pcap.DtmfEvent(plan.digit, plan.digit_at)]
        audio = caller_audio(speech_like(10.0, seed=11), hold)
        pcap.write_pcap(work / "caller.pcap", pcap.build_stream(audio, dtmf=dtmf))
        call = SippCall(
            target=self.pbx.sip_target,
            exten=EXTEN,
            caller=CALLER_NUMBER,
            pcap=work / "caller.pcap",
            hold=hold,
            name="agree",
            display=CALLER_NAME,
        )
        self.calls.append(asyncio.get_running_loop().create_task(place_call(call, work)))

    async def restart(self) -> None:
        await asyncio.to_thread(self.pbx.restart)
        await wait_until(self.pbx.up, 60, "Asterisk to boot again")

    async def finish(self) -> None:
        self.pbx.clean()
        for call in self.calls:
            await asyncio.wait_for(call, 30)


async def _asterisk_version(pbx: Pbx) -> str:
    info = await asyncio.to_thread(pbx.rest, "GET", "/asterisk/info", only="system")
    return f"Asterisk {info['system']['version']} with tests/pbx/conf"


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_the_simulator_does_what_asterisk_does(
    name: str, pbx: Pbx, agents: Agents, tmp_path: Path
) -> None:
    scenario = SCENARIOS[name]
    write_sounds(pbx.sounds, REAL)
    real = await record(scenario, RealSide(pbx, tmp_path / "real"), REAL)
    async with simulator(tmp_path / "sounds", REAL) as side:
        simulated = await record(scenario, side, REAL)
    if real["measured"]:
        logger.info("%s on the test PBX: %s", name, real["measured"])
    if os.environ.get(RECORD_ENV) == "1":
        save_fixture(name, real, await _asterisk_version(pbx))
    _agree(real, simulated, "asterisk", "simulator")
    _agree(load_fixture(name), real, "fixture", "asterisk")
    assert agents.alive(), "a sipp agent died during the scenario"


def _agree(want: Json, got: Json, want_label: str, got_label: str) -> None:
    diff = differences(want, got, want_label, got_label)
    assert not diff, f"{got_label} differs from {want_label}:\n" + "\n".join(diff)
