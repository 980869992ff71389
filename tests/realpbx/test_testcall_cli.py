"""``callrec testcall``, the command an admin runs, against the real PBX and a running recorder."""

from __future__ import annotations

import asyncio
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import ROOT, STASIS_EXTEN, Recorder

pytestmark = pytest.mark.realpbx


async def test_testcall_passes_its_scenarios_on_the_real_pbx(
    recorder: Recorder, tmp_path: Path
) -> None:
    junit = tmp_path / "testcall.xml"
    argv = ["testcall", "--target", recorder.pbx.sip_target, "--exten", STASIS_EXTEN]
    argv += ["--config", str(recorder.config_path), "--key", str(recorder.key_path)]
    argv += ["--talk", "3", "--junit", str(junit)]
    for name in ("stay", "hangup", "optout"):
        argv += ["--scenario", name]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callrec", *argv, cwd=ROOT, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    table = out.decode()
    assert proc.returncode == 0, table
    assert "3 passed, 0 failed" in table
    suite = ET.parse(junit).getroot()  # noqa: S314 (the file callrec just wrote)
    assert (suite.get("tests"), suite.get("failures")) == ("3", "0")
    calls = [line for line in recorder.audit() if line["event"] != "service"]
    assert [line["decision"] for line in calls] == [
        "implied",
        "declined-hangup",
        "declined-dtmf",
    ]
