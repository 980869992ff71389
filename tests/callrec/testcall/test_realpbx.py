"""SIP test calls against a real PBX and a running ``callrec serve`` (docs/OPERATIONS.md §6).

Set ``CALLREC_TEST_SIP_TARGET`` (the PBX's SIP ``host:port``, an extension
routed into ``Stasis(callrec,${EXTEN})`` with no authentication, e.g. the
``caller`` endpoint of §6), ``CALLREC_TEST_CONFIG`` (the callrec.toml the
running ``callrec serve`` uses: spool, audit log, timing) and
``CALLREC_TEST_KEY`` (a recipient's private key). Skipped otherwise; sipp and
root (or CAP_NET_RAW) are needed, as for ``callrec testcall``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from callrec.crypto.keys import PrivateKey
from callrec.testcall import harness
from callrec.testcall.options import config_for, load_options, scenarios_for
from callrec.testcall.report import table

from .conftest import need_sipp

TARGET = os.environ.get("CALLREC_TEST_SIP_TARGET", "")
CONFIG = os.environ.get("CALLREC_TEST_CONFIG", "")
KEY = os.environ.get("CALLREC_TEST_KEY", "")
EXTEN = os.environ.get("CALLREC_TEST_EXTEN", "100")

pytestmark = [
    pytest.mark.realpbx,
    pytest.mark.skipif(
        not (TARGET and CONFIG and KEY),
        reason="set CALLREC_TEST_SIP_TARGET, CALLREC_TEST_CONFIG and CALLREC_TEST_KEY",
    ),
]


@pytest.mark.parametrize("name", ["stay", "hangup", "optout"])
async def test_sip_caller_against_the_real_pbx(name: str) -> None:
    need_sipp()
    args = argparse.Namespace(
        config=CONFIG,
        exten=EXTEN,
        grace=None,
        optout_digit=None,
        disclosure=None,
        hangup_at=1.5,
        digit_at=1.5,
        talk=4.0,
        long=20.0,
        target=TARGET,
        spool=None,
        audit=None,
        audio=None,
        user=None,
        local_ip=TARGET.rpartition(":")[0] or "127.0.0.1",
        wait=20.0,
    )
    cfg = config_for(args)
    opts = load_options(args, cfg, [PrivateKey.load(Path(KEY))], None)
    report = await harness.run_scenario(scenarios_for(args, cfg)[name], opts)
    assert report.ok, table([report])
