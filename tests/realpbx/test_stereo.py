"""Stereo recording on the real Asterisk: each voice on its own channel.

The caller (sipp, speech from a pcap) talks while the agent is silent, then
the agent (a sipp UAS playing its own pcap: tests/pbx/uas-play.xml, behind
``PJSIP/talker``) talks while the caller is silent. The sealed recording has
two channels: the left's energy envelope must follow what the caller sent
and the right's what the agent sent (correlation at least 0.6 each), and the
crossed pairs must stay low.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from callrec.audio import envelope_correlation, resample
from callrec.decode import decode_recording
from callrec.media.signals import speech_like
from callrec.testcall import pcap
from callrec.testcall.checks import sent_before_recording
from callrec.testcall.harness import RATE, caller_audio, run_scenario

from .conftest import PBX_DIR, MakeRecorder, Pbx, _start_uas, line_of

pytestmark = pytest.mark.realpbx

TALKER_EXTEN = "400"  # routed by this test's config to PJSIP/talker (tests/pbx/conf/pjsip.conf)
TALKER_PORT = 5073
TALK = 4.0  # seconds each side talks while the other is silent
# After the agent answers (about when the recording starts): silent, then talking.
AGENT_SILENT = TALK + 1.0


def _agent_voice() -> npt.NDArray[np.int16]:
    silent = np.zeros(int(AGENT_SILENT * RATE), np.int16)
    tail = np.zeros(int(4 * RATE), np.int16)
    return np.concatenate([silent, speech_like(TALK, seed=31), tail])


@pytest.fixture
def talker(pbx: Pbx, tmp_path: Path) -> Iterator[npt.NDArray[np.int16]]:
    """The talking agent behind PJSIP/talker; yields what it says after answering."""
    voice = _agent_voice()
    work = tmp_path / "talker"
    work.mkdir()
    pcap.write_pcap(work / "agent.pcap", pcap.build_stream(voice))
    template = (PBX_DIR / "uas-play.xml").read_text()
    (work / "uas-play.xml").write_text(template.replace("{{pcap}}", str(work / "agent.pcap")))
    proc = _start_uas(work, TALKER_PORT, ["-sf", str(work / "uas-play.xml")])
    try:
        yield voice
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stereo_config(path: Path) -> None:
    """Calls to TALKER_EXTEN go to the talking agent and are recorded in stereo."""
    text = path.read_text(encoding="utf-8")
    route = f'"{TALKER_EXTEN}" = {{ endpoint = "PJSIP/talker", timeout = 10 }}\n'
    text = text.replace("[destinations]\n", "[destinations]\n" + route, 1)
    text += f'\n[recording.numbers."{TALKER_EXTEN}"]\nchannels = "stereo"\n'
    path.write_text(text, encoding="utf-8")


async def test_left_follows_the_caller_and_right_the_agent(
    make_recorder: MakeRecorder, talker: npt.NDArray[np.int16]
) -> None:
    recorder = await make_recorder(start=False)
    _stereo_config(recorder.config_path)
    await recorder.start()
    stay = recorder.scenarios(TALKER_EXTEN)["stay"]
    lead = recorder.disclosure_seconds(TALKER_EXTEN) + recorder.config.consent.grace
    # The caller talks through the disclosure and TALK seconds after, then is silent.
    hold = lead + AGENT_SILENT + TALK + 2.0
    caller_voice = np.concatenate(
        [speech_like(lead + TALK, seed=30), np.zeros(int(RATE * (hold - lead - TALK)), np.int16)]
    )
    options = replace(recorder.options(TALKER_EXTEN), audio=caller_voice)
    report = await run_scenario(replace(stay, hold=hold), options)
    # The whole-recording check compares the caller's audio with both
    # channels mixed; each channel is compared on its own below.
    failed = [c.name for c in report.checks if not c.ok]
    assert failed in ([], ["audio follows what was sent"]), report.checks
    line = line_of(report)
    (path,) = recorder.sealed()
    decoded = decode_recording(path, recorder.keys)
    assert decoded.channels == 2
    assert decoded.metadata[-1]["channels"] == "stereo"
    left = resample(decoded.samples[:, 0], decoded.rate, RATE)
    right = resample(decoded.samples[:, 1], decoded.rate, RATE)

    said = caller_audio(caller_voice, hold)[sent_before_recording(line, RATE) :][: len(left)]
    # The agent answers a moment before the recording starts: the lag search
    # (up to 1 s) of envelope_correlation covers that.
    heard = talker[: len(right)]
    pairs = {
        "left ~ caller": envelope_correlation(said, left, RATE),
        "right ~ agent": envelope_correlation(heard, right, RATE),
        "left ~ agent": envelope_correlation(heard, left, RATE),
        "right ~ caller": envelope_correlation(said, right, RATE),
    }
    assert pairs["left ~ caller"] >= 0.6, pairs
    assert pairs["right ~ agent"] >= 0.6, pairs
    assert pairs["left ~ agent"] < 0.3, pairs
    assert pairs["right ~ caller"] < 0.3, pairs
    sides = decoded.metadata[-1]["sides"]
    assert sides["caller"]["packets"] > 0 and sides["callee"]["packets"] > 0
