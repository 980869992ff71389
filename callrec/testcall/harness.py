"""Run test calls and judge each by what the recorder left behind."""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from callrec.audit import open_personal, read_audit
from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.crypto.keys import PrivateKey
from callrec.errors import CallrecError
from callrec.testcall import pcap
from callrec.testcall.checks import Check, check_call
from callrec.testcall.scenarios import Scenario
from callrec.testcall.sipp import DEFAULT_DISPLAY, SippCall, SippResult, place_call

logger = logging.getLogger(__name__)

RATE = 8000
# Audit events that end a call: a call's line, or its failure line instead.
CALL_EVENTS = ("call", "failure")


class Placer(Protocol):
    """Places one call; sipp by default, tests may add a simulator beside it."""

    async def __call__(self, call: SippCall, scenario: Scenario, workdir: Path) -> SippResult: ...


@dataclass(frozen=True)
class Options:
    target: str
    exten: str
    spool: Path
    audit_log: Path
    keys: Sequence[PrivateKey]
    audio: npt.NDArray[np.int16]
    user: str | None = None
    password: str | None = None
    local_ip: str = "127.0.0.1"
    wait: float = 20.0


@dataclass(frozen=True)
class Identity:
    """Who a test caller says it is: its From header's user part and display name.

    ``reported`` is the caller number the PBX is expected to hand on for
    ``user`` (Asterisk drops URI parameters, percent-decodes and cuts it to 79
    characters, trace 09); the call's audit line is found by it.
    """

    user: str
    display: str | None = DEFAULT_DISPLAY
    quoted: bool = True
    reported: str | None = None

    @property
    def number(self) -> str:
        return self.user if self.reported is None else self.reported


@dataclass
class CallReport:
    scenario: str
    caller: str
    seconds: float
    checks: list[Check] = field(default_factory=list)
    # The audit line the call left (None when none was found).
    record: dict[str, Any] | None = None
    sipp: SippResult | None = None

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)


def test_caller_id() -> str:
    """A caller number unique to one test call: digits only, so no PBX rewrites it."""
    return "99" + "".join(secrets.choice("0123456789") for _ in range(12))


def caller_audio(audio: npt.NDArray[np.int16], seconds: float) -> npt.NDArray[np.int16]:
    """``audio`` repeated or cut to ``seconds`` (the caller talks throughout)."""
    n = max(1, round(seconds * RATE))
    reps = -(-n // max(1, len(audio)))
    return np.tile(audio, reps)[:n]


def build_pcap(scenario: Scenario, audio: npt.NDArray[np.int16], path: Path) -> None:
    dtmf = []
    if scenario.digit_at is not None:
        dtmf.append(pcap.DtmfEvent(scenario.digit, scenario.digit_at))
    pcap.write_pcap(path, pcap.build_stream(caller_audio(audio, scenario.hold), dtmf=dtmf))


async def sipp_placer(call: SippCall, scenario: Scenario, workdir: Path) -> SippResult:
    """The default placer: sipp alone, against the real PBX."""
    return await place_call(call, workdir)


def audit_offset(path: Path) -> int:
    """How many audit lines there are now: a test call's line comes after them."""
    if not path.exists():
        return 0
    return sum(1 for _ in read_audit(path))


def matching_line(
    path: Path, offset: int, caller: str, keys: Sequence[PrivateKey]
) -> dict[str, Any] | None:
    """The call's line (``call``, or ``failure`` when recording failed) after the
    first ``offset`` lines whose sealed caller is ``caller``.

    Lines before ``offset`` are skipped unopened (only new lines are
    decrypted). A recording's line is preferred to an AGI consent-stage line,
    which has no recording id; the consent line is the answer when no
    recording followed.
    """
    if not path.exists():
        return None
    found: dict[str, Any] | None = None
    for number, record in enumerate(read_audit(path)):
        if number < offset or record.get("event") not in CALL_EVENTS:
            continue
        if not record.get("personal_sealed") or not _from(record, caller, keys):
            continue
        if record.get("stage") != "consent":
            return record
        found = found or record
    return found


def _from(record: dict[str, Any], caller: str, keys: Sequence[PrivateKey]) -> bool:
    try:
        personal = open_personal(record, keys)
    except CallrecError:
        return False
    return personal.get("caller_number") == caller


async def wait_for_line(
    opts: Options,
    offset: int,
    caller: str,
    clock: Clock = SYSTEM_CLOCK,
    *,
    recorded: bool = False,
) -> dict[str, Any] | None:
    """The call's audit line, once there is one.

    When the call should be ``recorded``, an AGI consent-stage line (written
    as soon as consent is decided) is only the answer if no recording line
    follows in time: the recording's own line comes when it is sealed, a
    moment after the caller hung up.
    """
    deadline = clock.monotonic() + opts.wait
    while True:
        found = matching_line(opts.audit_log, offset, caller, opts.keys)
        final = found is not None and not (recorded and found.get("stage") == "consent")
        if final or clock.monotonic() >= deadline:
            return found
        await clock.sleep(0.2)


async def run_scenario(
    scenario: Scenario,
    opts: Options,
    placer: Placer = sipp_placer,
    identity: Identity | None = None,
) -> CallReport:
    """Place one scripted call and check everything it should have left.

    The caller is a fresh :func:`test_caller_id` unless ``identity`` says who
    it is (hostile caller IDs).
    """
    identity = identity or Identity(test_caller_id())
    caller = identity.user
    report = CallReport(scenario.name, caller, scenario.hold)
    with tempfile.TemporaryDirectory(prefix="callrec-testcall-") as tmp:
        work = Path(tmp)
        build_pcap(scenario, opts.audio, work / "caller.pcap")
        call = SippCall(
            target=opts.target,
            exten=opts.exten,
            caller=caller,
            pcap=work / "caller.pcap",
            hold=scenario.hold,
            name=scenario.name,
            local_ip=opts.local_ip,
            user=opts.user,
            password=opts.password,
            display=identity.display,
            quoted=identity.quoted,
        )
        offset = audit_offset(opts.audit_log)
        result = await placer(call, scenario, work)
    report.sipp = result
    report.checks.append(Check("call answered", result.answered, f"sipp exit {result.returncode}"))
    record = await wait_for_line(opts, offset, identity.number, recorded=scenario.expect_recording)
    report.record = record
    if record is None:
        report.checks.append(
            Check("audit line", False, f"no audit line for caller {caller} within {opts.wait} s")
        )
        return report
    report.checks.append(Check("audit line", True, f"line {record.get('id')}"))
    sent = caller_audio(opts.audio, scenario.hold)
    report.checks += check_call(
        scenario, record, spool=opts.spool, keys=opts.keys, sent=sent, sent_rate=RATE
    )
    return report


async def run_all(
    scenarios: Sequence[Scenario], opts: Options, placer: Placer = sipp_placer
) -> list[CallReport]:
    """One call after another, so each finds its own audit line quickly."""
    return [await run_scenario(s, opts, placer) for s in scenarios]
