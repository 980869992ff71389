"""The simulator still does what the real Asterisk 22 did: the pinned sequences.

``tests/fixtures/pbx-sequences/`` holds, per scenario of
:mod:`tests.callrec.ari.agreement_scenarios`, the normalised event sequences
and REST outcomes recorded from the test PBX by
``tests/realpbx/test_sim_agreement.py`` (which also checks they are still
what the PBX does). Here the simulator runs the same scripts, faster, with
no PBX: a change that makes it drift from Asterisk fails the plain test run.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.callrec.ari.agreement import (
    FAST,
    FIXTURES,
    differences,
    load_fixture,
    record,
    simulator,
)
from tests.callrec.ari.agreement_scenarios import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_the_simulator_does_what_the_recorded_asterisk_did(
    name: str, tmp_path: Path
) -> None:
    async with simulator(tmp_path / "sounds", FAST) as side:
        simulated = await record(SCENARIOS[name], side, FAST)
    diff = differences(load_fixture(name), simulated, "asterisk (pinned)", "simulator")
    assert not diff, "the simulator drifted from Asterisk:\n" + "\n".join(diff)


def test_every_pinned_sequence_has_its_scenario() -> None:
    """A fixture whose scenario was renamed or dropped would pin nothing."""
    pinned = {p.stem for p in FIXTURES.glob("*.json")}
    assert pinned == set(SCENARIOS)
