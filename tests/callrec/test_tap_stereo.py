"""A stereo tap on its own, against the simulator: two snoops (spy in, spy out),
two ExternalMedia streams, one 2-channel recording; every PBX object named
before it is requested, and removed at the stop."""

from __future__ import annotations

import asyncio
from types import MappingProxyType

import numpy as np

from callrec.decode import decode_recording
from callrec.tap import RecordingTap, TapSettings
from tests.callrec.test_tap import TapRig, _evidence, taprig

__all__ = ["taprig"]  # the fixture, used by name


def _tap(taprig: TapRig, **channels: object) -> RecordingTap:
    settings = TapSettings(app="callrec", **channels)  # type: ignore[arg-type]
    return RecordingTap(
        taprig.client, taprig.router, taprig.recorder, taprig.spool, [taprig.public], settings
    )


async def test_the_second_leg_is_named_only_where_a_number_may_be_stereo(
    taprig: TapRig,
) -> None:
    mixed = _tap(taprig)
    assert mixed.ids.heard_snoop is None and len(mixed.ids.ids()) == 3
    maybe = _tap(taprig, channel_numbers=MappingProxyType({"555": "stereo"}))
    # Before the start the number is not known: both legs are named...
    before = maybe.ids
    assert before.heard_snoop == maybe.heard_leg.snoop_id and len(before.ids()) == 6
    caller = await taprig.caller()
    await maybe.start(caller, _evidence(caller), caller)  # ...a call to 100 is mixed
    after = maybe.ids
    assert maybe.mode == "mixed" and after.heard_snoop is None
    await maybe.stop("test")


async def test_a_stereo_tap_records_what_the_caller_says_left_and_removes_both_legs(
    taprig: TapRig,
) -> None:
    caller = await taprig.caller()
    tap = _tap(taprig, channels="stereo")
    await tap.start(caller, _evidence(caller), caller)
    snoops = {ch.id: ch.snoop_spy for ch in taprig.sim.channels if ch.kind == "snoop"}
    assert snoops == {tap.snoop_id: "in", tap.heard_leg.snoop_id: "out"}
    assert len(taprig.sim.bridges) == 2
    await asyncio.sleep(1.0)
    result = await tap.stop("test")
    assert result is not None and result.seal is not None
    decoded = decode_recording(result.seal.path, taprig.keys)
    assert decoded.channels == 2
    left, right = decoded.samples[:, 0], decoded.samples[:, 1]
    # The caller talks; in no bridge it hears nothing.
    assert np.abs(left.astype(np.int32)).mean() > 100 and not right.any()
    sent = sum(
        taprig.sim.rtp_stats(m).packets_sent for m in (tap.media_id, tap.heard_leg.media_id)
    )
    assert result.stats["packets"] == sent
    assert {ch.kind for ch in taprig.sim.channels} == {"caller"}
    assert taprig.sim.bridges == []
