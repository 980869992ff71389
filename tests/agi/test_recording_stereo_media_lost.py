"""AGI ``/record`` in stereo: one side's RTP stops while the other's goes on.

Best-effort keeps the dialplan call and the recording going; the audit log
gets a ``failure`` line at once naming the side, as it does for a mixed
recording's lost media, and the sealed file marks the side.
"""

from __future__ import annotations

from pathlib import Path

from callrec.decode import decode_recording
from callrec.media.layout import Side
from callrec.recording import verify
from tests.agi.test_recording import make_rig, wait_until


async def test_a_lost_side_is_audited_at_once_and_the_recording_goes_on(
    tmp_path: Path,
) -> None:
    rig = await make_rig(tmp_path, channels="stereo")
    try:
        assert rig.app.ctx is not None
        rig.app.ctx.media_timeout = 0.6
        cid = await rig.dialplan_call(seconds=4.0)
        await rig.agi("consent", cid)
        record = await rig.agi("record", cid)
        assert record.variables["CALLREC_RECORDING"]
        (active,) = rig.service.recordings.active.values()
        media = active.tap.legs[Side.CALLER].media_id
        await wait_until(lambda: rig.sim.rtp_stats(media).packets_sent >= 25, 10)
        made = rig.sim.rtp_stats(media).packets_generated
        rig.sim.rtp_faults(media, drop=range(made, made + 1_000_000))

        (failure,) = await wait_until(
            lambda: [r for r in rig.audit() if r["event"] == "failure"], 10
        )
        assert failure["reason"] == "media stream lost on the caller side"
        assert rig.sim.channel(cid) is not None  # the dialplan call goes on
        (line,) = await wait_until(
            lambda: [r for r in rig.audit("recording") if r["event"] == "call"], 15
        )
        path = Path(line["path"])
        assert line["sealed"] is True and str(verify(path, rig.keys).verdict) == "complete"
        marks = [m for m in decode_recording(path, rig.keys).metadata if "side" in m]
        assert [(m["type"], m["side"]) for m in marks] == [("media-lost", "caller")]
    finally:
        await rig.app.shutdown()
        await rig.sim.stop()
