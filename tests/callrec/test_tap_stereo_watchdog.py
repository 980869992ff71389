"""A stereo tap whose one side's RTP stops while the other's goes on.

Two callers of the simulator talk in one bridge; the tap records the first:
left what it says, right what it hears (the second). Mid-recording the
simulator stops sending one side's ExternalMedia stream. The watchdog must
name that side (the owner's failure reason, a warning, a ``media-lost`` mark
in the file), and the file must stay truthful: the dead side's channel is
silence from the moment its packets stopped, the other channel holds every
packet its side sent, on the same timeline. Real sockets, real sealed files,
a short ``media_timeout``; no wall-clock durations asserted.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from callrec.ari.sim import CallerScenario
from callrec.decode import decode_recording
from callrec.media.g711 import ulaw_decode
from callrec.media.layout import Side
from callrec.media.signals import speech_like
from callrec.pausing import PauseSource
from callrec.recording import verify
from callrec.tap import MEDIA_LOST, RecordingTap, TapResult, TapSettings, ends_recording
from callrec.tap_watchdog import media_lost_on
from tests.callrec.test_tap import QUICK_TIMEOUT, TapRig, _evidence, _until, taprig

__all__ = ["taprig"]  # the fixture, used by name

SPP = 160  # samples per 20 ms packet (u-law, 8 kHz)
# How far the two channels may disagree on one moment: the aligner keeps
# them within a packet, and the two simulated streams tick apart by up to one.
ALIGNED = 2 * SPP


async def _stereo_call(taprig: TapRig) -> tuple[RecordingTap, list[str]]:
    """A caller bridged with a second one that talks too, recorded in stereo."""
    caller = await taprig.caller()
    other = taprig.sim.place_call(CallerScenario(audio=speech_like(30.0, seed=12)))
    await taprig.router.wait_for(other, "StasisStart", 5)
    await taprig.client.answer(other)
    bridge = "test-call-bridge"
    await taprig.client.create_bridge("mixing", bridge_id=bridge, name="call")
    await taprig.client.add_channels(bridge, [caller, other])
    reasons: list[str] = []
    settings = TapSettings(app="callrec", media_timeout=QUICK_TIMEOUT, channels="stereo")
    tap = RecordingTap(
        *(taprig.client, taprig.router, taprig.recorder, taprig.spool, [taprig.public]),
        settings,
        on_failure=reasons.append,
    )
    await tap.start(caller, _evidence(caller), caller)
    return tap, reasons


def _media(tap: RecordingTap, side: Side) -> str:
    """The ExternalMedia channel that carries ``side``."""
    return tap.legs[side].media_id


async def _flowing(taprig: TapRig, tap: RecordingTap, packets: int) -> None:
    """Until both sides have sent ``packets`` packets."""
    await _until(
        lambda: all(
            taprig.sim.rtp_stats(_media(tap, side)).packets_sent >= packets for side in Side
        ),
        10.0,
    )


def _stop_sending(taprig: TapRig, tap: RecordingTap, side: Side) -> dict[Side, int]:
    """Drop ``side``'s packets from now on; the packets each side had made by then."""
    made = {s: taprig.sim.rtp_stats(_media(tap, s)).packets_generated for s in Side}
    taprig.sim.rtp_faults(_media(tap, side), drop=range(made[side], made[side] + 1_000_000))
    return made


def _sent(taprig: TapRig, tap: RecordingTap, side: Side) -> npt.NDArray[np.int16]:
    """What ``side``'s stream sent, every packet, as samples."""
    return ulaw_decode(b"".join(taprig.sim.rtp_stats(_media(tap, side)).payloads))


def _offset(channel: npt.NDArray[np.int16], sent: npt.NDArray[np.int16]) -> int:
    """Where ``sent`` starts in ``channel`` (found by its first packet with sound)."""
    first = int(np.flatnonzero(sent)[0]) // SPP * SPP
    probe = sent[first : first + SPP].tobytes()
    found = channel.tobytes().find(probe)
    assert found >= 0 and found % 2 == 0, "the side's audio is not in its channel"
    return found // 2 - first


def _marks(path: Path, keys: Any) -> list[dict[str, Any]]:
    metadata = decode_recording(path, keys).metadata
    return [m for m in metadata if m.get("type") in ("media-lost", "media-back")]


def _sealed(result: TapResult | None, taprig: TapRig) -> Path:
    assert result is not None and result.seal is not None
    path = result.seal.path
    assert str(verify(path, taprig.keys).verdict) == "complete"
    return path


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
@pytest.mark.parametrize("dead", list(Side), ids=lambda side: side.name.lower())
async def test_one_side_lost_is_silence_on_its_channel_and_the_other_keeps_every_packet(
    taprig: TapRig, dead: Side, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callrec.tap")
    tap, reasons = await _stereo_call(taprig)
    live = Side(1 - dead)
    await _flowing(taprig, tap, 50)
    made = _stop_sending(taprig, tap, dead)
    await _until(lambda: bool(reasons), 5.0)
    # The live side talks on: a second more of it, recorded after the loss.
    await _until(
        lambda: taprig.sim.rtp_stats(_media(tap, live)).packets_sent >= made[live] + 50, 5.0
    )
    assert tap.recording  # the tap does not end the recording: the owner's policy does
    result = await tap.stop("test")
    path = _sealed(result, taprig)

    # The owner is told which side, once, and a warning says what the file holds.
    name = dead.name.lower()
    assert reasons == [media_lost_on(dead)] and name in reasons[0]
    assert not ends_recording(reasons[0], "best-effort") and ends_recording(reasons[0], "strict")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and f"no RTP on the {name} side" in warnings[0]

    # The file's mark names the side and when its RTP stopped.
    decoded = decode_recording(path, taprig.keys)
    (mark,) = _marks(path, taprig.keys)
    summary = decoded.metadata[-1]
    assert mark["type"] == "media-lost" and mark["side"] == name
    assert mark["idle_seconds"] >= QUICK_TIMEOUT
    assert summary["recording_started"] < mark["at"] - mark["idle_seconds"] < mark["at"]
    assert mark["at"] < summary["recording_ended"]

    dead_ch, live_ch = decoded.samples[:, dead], decoded.samples[:, live]
    # The dead side: what it sent up to the loss, then silence to the end.
    said = _sent(taprig, tap, dead)[: made[dead] * SPP]
    at = _offset(dead_ch, said)
    np.testing.assert_array_equal(dead_ch[at : at + len(said)], said)
    silent_from = at + len(said)
    assert not dead_ch[silent_from:].any()
    # The live side: every packet it sent, contiguous, through the loss and after it...
    heard = _sent(taprig, tap, live)
    start = _offset(live_ch, heard)
    recorded = live_ch[start:]
    assert len(recorded) >= (made[live] + 50) * SPP
    np.testing.assert_array_equal(recorded, heard[: len(recorded)])
    # ...on the same timeline: where the dead side went silent is where the
    # live side was when its packets stopped.
    assert abs(silent_from - (start + made[live] * SPP)) <= ALIGNED
    assert decoded.gaps == 0  # no gap frame: the live side covers the whole time


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_a_side_that_comes_back_is_marked_back_and_recorded_again(
    taprig: TapRig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="callrec.tap")
    tap, reasons = await _stereo_call(taprig)
    await _flowing(taprig, tap, 25)
    media = _media(tap, Side.CALLEE)
    made = taprig.sim.rtp_stats(media).packets_generated
    # Two seconds without the callee side: longer than the timeout and the
    # two checks that tell a side's loss from both sides stopping together.
    taprig.sim.rtp_faults(media, drop=range(made, made + 100))

    def backs() -> list[str]:
        return [r.getMessage() for r in caplog.records if "media stream back" in r.getMessage()]

    await _until(lambda: bool(backs()), 6.0)
    # packets_sent counts what was not dropped: 50 packets back.
    await _until(lambda: taprig.sim.rtp_stats(media).packets_sent >= made + 50, 8.0)
    result = await tap.stop("test")
    path = _sealed(result, taprig)
    assert reasons == [media_lost_on(Side.CALLEE)]
    assert len(backs()) == 1 and "on the callee side" in backs()[0]
    lost, back = _marks(path, taprig.keys)
    assert (lost["type"], lost["side"]) == ("media-lost", "callee")
    assert (back["type"], back["side"]) == ("media-back", "callee")
    assert lost["at"] <= back["at"]
    # What the callee side sent once back is on its channel again.
    decoded = decode_recording(path, taprig.keys)
    returned = _sent(taprig, tap, Side.CALLEE)[(made + 100) * SPP : (made + 150) * SPP]
    assert returned.any()
    probe = returned[np.flatnonzero(returned)[0] // SPP * SPP :][:SPP]
    assert decoded.samples[:, Side.CALLEE].tobytes().find(probe.tobytes()) > 0


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_both_sides_lost_is_one_loss_of_the_media_as_in_a_mixed_tap(
    taprig: TapRig,
) -> None:
    tap, reasons = await _stereo_call(taprig)
    await _flowing(taprig, tap, 25)
    for side in Side:
        _stop_sending(taprig, tap, side)
    await _until(lambda: bool(reasons), 5.0)
    await asyncio.sleep(0.6)  # another check or more: nothing else is reported
    result = await tap.stop("test")
    path = _sealed(result, taprig)
    assert reasons == [MEDIA_LOST]
    (mark,) = _marks(path, taprig.keys)
    assert mark["type"] == "media-lost" and "side" not in mark


@pytest.mark.parametrize("taprig", ["after"], indirect=True)
async def test_a_paused_stereo_tap_reports_no_side_until_resumed(taprig: TapRig) -> None:
    tap, reasons = await _stereo_call(taprig)
    await _flowing(taprig, tap, 15)
    tap.pause(PauseSource.CONTROL)
    _stop_sending(taprig, tap, Side.CALLER)
    await asyncio.sleep(1.0)
    assert reasons == []  # paused: nothing is recorded, so nothing is missing
    tap.resume(PauseSource.CONTROL)
    await _until(lambda: bool(reasons), 5.0)
    result = await tap.stop("test")
    path = _sealed(result, taprig)
    assert reasons == [media_lost_on(Side.CALLER)]
    (mark,) = _marks(path, taprig.keys)
    assert mark["side"] == "caller"
