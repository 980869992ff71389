"""The agent pauses the recording on the real Asterisk, with RFC 4733 digits.

The agent is a sipp UAS behind ``PJSIP/talker`` (tests/pbx/uas-pause.xml),
playing one stream as a phone sends it: it says A, presses ``*`` ``1`` (the
RFC 4733 event packets of sip-tester's own ``dtmf_2833_*.pcap``), says B,
presses ``*`` ``2``, says C (the pitches of tests/ari_app/pause_support.py).
The caller is silent, so the recording holds what the caller hears. A and C
must be in it, B not, C as long after A as it was said; the pause lasts from
the end of ``*`` to the end of ``2`` (Asterisk reports a digit when it ends)
within 100 ms; the digits leave no tone in the recording, with the codes on
or off. A digit the caller presses pauses nothing.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from callrec.decode import Decoded, decode_recording
from callrec.testcall import pcap
from callrec.testcall.harness import RATE, CallReport, run_scenario
from tests.ari_app.pause_support import (
    AFTER,
    BEFORE,
    DURING,
    agent_voice,
    dtmf_level,
    heard_seconds,
    onset,
)

from .conftest import PBX_DIR, MakeRecorder, Pbx, Recorder, _start_uas, line_of

pytestmark = pytest.mark.realpbx

PAUSER_EXTEN = "410"  # routed by this test's config to PJSIP/talker
TALKER_PORT = 5073
DIGITS = Path("/usr/share/sip-tester")  # sip-tester ships dtmf_2833_<digit>.pcap here
# When the agent presses each digit, in seconds after its answer: "*1" after
# A (0.8 .. 2.0 s), "*2" after B (3.2 .. 4.6 s, while paused), then C (6.0 .. 7.4 s).
PRESSES = ((2.3, "star"), (2.6, "1"), (5.0, "star"), (5.3, "2"))
DIGIT_SECONDS = 0.14  # each of sip-tester's digits: 8 event packets, 20 ms apart
# From the end of the pause code's first digit to the end of the resume code.
PAUSED = PRESSES[3][0] - PRESSES[0][0]
STAYS = 8.5  # the caller hangs up about this long after the agent answered


def _events(digit: str, at: float) -> list[pcap.TimedPacket]:
    """One of sip-tester's digits, pressed ``at`` seconds into the agent's stream."""
    rows = pcap.read_pcap_rtp(DIGITS / f"dtmf_2833_{digit}.pcap")
    first = rows[0][0]
    timestamp = round(at * RATE)  # an event's timestamp is its start (RFC 4733)
    return [
        pcap.TimedPacket(at + (t - first), pcap.PT_EVENT, 0, timestamp, i == 0, rtp[12:])
        for i, (t, rtp) in enumerate(rows)
    ]


def agent_stream(
    voice: npt.NDArray[np.int16], presses: Sequence[tuple[float, str]]
) -> list[pcap.TimedPacket]:
    """The agent's voice and digits as one RTP stream (one SSRC, rising numbers)."""
    packets = pcap.build_stream(voice)
    for at, digit in presses:
        packets.extend(_events(digit, at))
    packets.sort(key=lambda p: p.at)
    return [replace(p, seq=seq) for seq, p in enumerate(packets, start=1)]


@pytest.fixture
def pausing_agent(pbx: Pbx, tmp_path: Path) -> Iterator[None]:
    with playing_agent(tmp_path / "agent", agent_stream(agent_voice(seconds=STAYS), PRESSES)):
        yield


@contextlib.contextmanager
def playing_agent(work: Path, stream: list[pcap.TimedPacket]) -> Iterator[None]:
    """The sipp UAS behind ``PJSIP/talker``, answering and playing ``stream``."""
    if not (DIGITS / "dtmf_2833_star.pcap").exists():
        pytest.fail(f"sip-tester's digit pcaps are not in {DIGITS} (apt-get install sip-tester)")
    work.mkdir()
    pcap.write_pcap(work / "agent.pcap", stream)
    text = (PBX_DIR / "uas-pause.xml").read_text().replace("{{pcap}}", str(work / "agent.pcap"))
    (work / "uas-pause.xml").write_text(text)
    proc = _start_uas(work, TALKER_PORT, ["-sf", str(work / "uas-pause.xml")])
    try:
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _recorder(make_recorder: MakeRecorder, recording: str = "") -> Recorder:
    """``callrec serve`` with calls to PAUSER_EXTEN going to the pausing agent."""
    recorder = await make_recorder(start=False)
    path = recorder.config_path
    text = path.read_text(encoding="utf-8")
    route = f'"{PAUSER_EXTEN}" = {{ endpoint = "PJSIP/talker", timeout = 10 }}\n'
    text = text.replace("[destinations]\n", "[destinations]\n" + route, 1)
    text = text.replace("[recording]\n", "[recording]\n" + recording, 1)
    path.write_text(text, encoding="utf-8")
    await recorder.start()
    return recorder


async def _call(
    recorder: Recorder, caller_digits: tuple[tuple[float, str], ...] = ()
) -> tuple[CallReport, Decoded]:
    """A silent caller who stays until the agent's script is over."""
    lead = recorder.disclosure_seconds(PAUSER_EXTEN) + recorder.config.consent.grace
    hold = lead + 1.0 + STAYS
    stay = recorder.scenarios(PAUSER_EXTEN)["stay"]
    scenario = replace(stay, hold=hold)
    if caller_digits:
        ((at, digit),) = caller_digits
        scenario = replace(scenario, digit=digit, digit_at=lead + at)
    silent = np.zeros(int(hold * RATE), np.int16)
    report = await run_scenario(scenario, replace(recorder.options(PAUSER_EXTEN), audio=silent))
    # The caller is silent: what it "sent" cannot be followed; every other check holds.
    failed = [c.name for c in report.checks if not c.ok]
    assert failed in ([], ["audio follows what was sent"]), report.checks
    (path,) = recorder.sealed()
    return report, decode_recording(path, recorder.keys)


async def test_the_agent_pauses_with_rfc4733_digits(
    make_recorder: MakeRecorder, pausing_agent: None
) -> None:
    recorder = await _recorder(make_recorder)
    report, decoded = await _call(recorder)
    line = line_of(report)
    samples = decoded.mono()

    assert heard_seconds(samples, BEFORE) == pytest.approx(BEFORE.end - BEFORE.start, abs=0.1)
    assert heard_seconds(samples, DURING) == 0.0
    assert heard_seconds(samples, AFTER) == pytest.approx(AFTER.end - AFTER.start, abs=0.1)
    a, c = onset(samples, BEFORE), onset(samples, AFTER)
    assert a is not None and c is not None
    assert c - a == pytest.approx(AFTER.start - BEFORE.start, abs=0.1)

    [pause] = decoded.metadata[-1]["pauses"]
    assert (pause["source"], pause["resumed_by"]) == ("agent-code", "agent-code")
    assert pause["seconds"] == pytest.approx(PAUSED, abs=0.1)
    marks = [
        (e["event"], e["source"]) for e in decoded.events if e["event"] in ("pause", "resume")
    ]
    assert marks == [("pause", "agent-code"), ("resume", "agent-code")]
    assert line["pauses"] == 1
    assert line["durations"]["paused"] == pytest.approx(PAUSED, abs=0.1)
    assert dtmf_level(samples) < 300


async def test_the_agents_digits_without_codes_leave_no_tone(
    make_recorder: MakeRecorder, pausing_agent: None
) -> None:
    """Codes off: the digits pass to the caller as RFC 4733 events, nothing is paused,
    and what the snoop records of them is no tone (only the agent's silence)."""
    recorder = await _recorder(make_recorder, 'pause_code = ""\nresume_code = ""\n')
    report, decoded = await _call(recorder)
    samples = decoded.mono()
    assert line_of(report)["pauses"] == 0
    assert heard_seconds(samples, DURING) == pytest.approx(DURING.end - DURING.start, abs=0.1)
    assert dtmf_level(samples) < 300


async def test_the_callers_digit_pauses_nothing(
    make_recorder: MakeRecorder, pausing_agent: None
) -> None:
    """A one-digit pause code, pressed by the caller (RFC 4733) while the agent says A:
    nothing pauses until the agent's own "1" (of its "*1")."""
    recorder = await _recorder(make_recorder, 'pause_code = "1"\n')
    report, decoded = await _call(recorder, ((1.5, "1"),))
    assert heard_seconds(decoded.mono(), BEFORE) == pytest.approx(
        BEFORE.end - BEFORE.start, abs=0.1
    )
    [pause] = decoded.metadata[-1]["pauses"]
    assert pause["source"] == "agent-code"
    assert line_of(report)["pauses"] == 1
