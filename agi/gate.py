"""The consent gate over AGI: the disclosure, the caller's answer, the evidence.

The policy is the core's :class:`~callrec.consent.ConsentGate`; this module
only turns AGI results into its events. STREAM FILE plays the disclosure
with the opt-out (and, in explicit mode, accept) digit as escape digits; WAIT
FOR DIGIT covers the grace or timeout after it. ``result=-1`` and the
``HANGUP`` line are a hang-up; a ``result=-1`` on a channel that still
answers CHANNEL STATUS is a disclosure that could not be played.

The dialplan always learns the outcome: ``CALLREC_ID`` (the call's id),
``CALLREC_CONSENT`` (the decision) or ``CALLREC_ERROR`` (why there is none),
and ``CALLREC_CONNECT`` (``yes``/``no``: whether the policy lets the call go
on). Decisions are kept in a :class:`ConsentLedger` by channel uniqueid:
``/record`` trusts only what this server decided, never a channel variable.
"""

from __future__ import annotations

import logging
import math
import re
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agi.protocol import AgiCommands, AgiEnvironment, AgiResponse
from callrec.audit import audit_record
from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.config import Config
from callrec.consent import ConsentGate, Decision, DisclosureFailed
from callrec.errors import (
    AgiDeadChannel,
    AgiError,
    AgiHangup,
)
from callrec.evidence import PLAYBACK_FAILED, PROMPT_UNHASHED, Evidence, dialled_number
from callrec.failure_policy import is_strict
from callrec.logutil import CallLogAdapter, mask_number, safe
from callrec.prompts.names import PromptRef

logger = logging.getLogger(__name__)

CONSENT_VARIABLE = "CALLREC_CONSENT"
ID_VARIABLE = "CALLREC_ID"
ERROR_VARIABLE = "CALLREC_ERROR"
CONNECT_VARIABLE = "CALLREC_CONNECT"

# Asterisk uniqueids are "<epoch>.<counter>"; ARI originate may choose any id
# up to 150 characters. Anything else is not used as a key.
_UNIQUEID = re.compile(r"[A-Za-z0-9._-]{1,150}")
# WAIT FOR DIGIT in slices, so a long explicit-mode timeout still notices a
# hang-up promptly on PBXs that do not return -1 at once.
MAX_WAIT_MS = 5000
# Key presses kept in the evidence. A caller presses a few; a peer answering
# every WAIT FOR DIGIT at once must not grow the list until the grace ends.
# A digit that decides (opt-out, accept) always counts.
MAX_DIGITS = 32
LEDGER_SIZE = 10000
LEDGER_TTL = 4 * 3600.0

# Appends one audit line; a broken audit log is logged by the sink, never raised.
AuditSink = Callable[[dict[str, Any], dict[str, str]], object]


@dataclass(frozen=True)
class ConsentRecord:
    """What this server decided for one channel."""

    call_id: str
    uniqueid: str
    decision: Decision
    evidence: Evidence


class ConsentLedger:
    """Decisions by channel uniqueid, for ``/record``.

    Bounded in size and age: an entry is only needed until the dialplan's
    next step, and it holds the caller's evidence (personal data) in memory.
    """

    def __init__(
        self, size: int = LEDGER_SIZE, ttl: float = LEDGER_TTL, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._size = size
        self._ttl = ttl
        self._clock = clock
        self._records: OrderedDict[str, tuple[float, ConsentRecord]] = OrderedDict()

    def add(self, record: ConsentRecord) -> None:
        self._records[record.uniqueid] = (self._clock.monotonic(), record)
        self._records.move_to_end(record.uniqueid)
        self._expire()

    def get(self, uniqueid: str) -> ConsentRecord | None:
        self._expire()
        entry = self._records.get(uniqueid)
        return None if entry is None else entry[1]

    def __len__(self) -> int:
        return len(self._records)

    def _expire(self) -> None:
        oldest = self._clock.monotonic() - self._ttl
        while self._records:
            added, _ = next(iter(self._records.values()))
            if added >= oldest and len(self._records) <= self._size:
                return
            self._records.popitem(last=False)


@dataclass
class GateOutcome:
    call_id: str
    decision: Decision | None
    error: str | None
    evidence: Evidence | None
    connect: bool


def valid_uniqueid(value: str) -> bool:
    return _UNIQUEID.fullmatch(value) is not None


def dialled(env: AgiEnvironment) -> str:
    """The number the caller dialled: AGI argument 1, else the extension, else the DNID."""
    return dialled_number(*env.args[:1], env.extension, env.dnid)


def caller_number(env: AgiEnvironment) -> str:
    """Asterisk writes ``unknown`` when there is no caller id."""
    number = env.callerid
    return "" if number == "unknown" else number


def new_call_id() -> str:
    return uuid.uuid4().hex


class AgiConsent:
    """Runs the consent gate for one AGI session; shared by FastAGI and agi-bin."""

    def __init__(
        self,
        config: Config,
        pseudonym_key: bytes,
        clock: Clock,
        *,
        ledger: ConsentLedger | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self._config = config
        self._key = pseudonym_key
        self._clock = clock
        self._policy = config.consent
        self.ledger = ledger if ledger is not None else ConsentLedger()
        self._audit = audit

    async def run(
        self, agi: AgiCommands, env: AgiEnvironment, *, audit: bool = True
    ) -> GateOutcome:
        """Play the disclosure, decide, set the channel variables, audit.

        ``audit=False`` leaves the audit line to the caller (see
        :meth:`write_audit`): when a recording follows at once, its line at
        sealing time is the call's one line, as in the Stasis app.
        """
        call_id = new_call_id()
        log = CallLogAdapter(logger, env.uniqueid or "-")
        if not valid_uniqueid(env.uniqueid):
            log.warning("refusing consent: unusable agi_uniqueid %s", safe(env.uniqueid))
            await agi.set_variable_quietly(ERROR_VARIABLE, "bad-channel")
            return GateOutcome(call_id, None, "bad-channel", None, False)
        number = dialled(env)
        prompt = self._config.prompt_for(number, env.language, "disclosure")
        gate = ConsentGate(self._policy, self._clock)
        evidence = Evidence.for_disclosure(
            gate,
            prompt,
            uniqueid=env.uniqueid,
            linkedid=await _linkedid(agi, env.uniqueid),
            caller_number=caller_number(env),
            caller_name=env.calleridname,
            dialled=number,
            pseudonym_key=self._key,
            frontend="agi",
        )
        outcome = await self._decide(agi, gate, evidence, prompt, call_id, log)
        await self._publish(agi, outcome)
        if audit:
            self.write_audit(outcome)
        log.info(
            "consent %s for caller %s (call %s)",
            outcome.decision or outcome.error,
            mask_number(evidence.personal.get("caller_number", "")),
            call_id,
        )
        return outcome

    async def _decide(
        self,
        agi: AgiCommands,
        gate: ConsentGate,
        evidence: Evidence,
        prompt: PromptRef,
        call_id: str,
        log: CallLogAdapter,
    ) -> GateOutcome:
        if evidence.prompt_sha256 is None:
            log.error("disclosure missing: %s cannot be read", safe(str(prompt.path_wav), 200))
            gate.prompt_failed(PROMPT_UNHASHED)
        else:
            await self._converse(agi, gate, str(prompt.path_wav.with_suffix("")), log)
        try:
            decision = await gate.decision()
        except DisclosureFailed as exc:
            connect = not is_strict(self._config.recording.on_failure)
            return GateOutcome(call_id, None, "disclosure-failed:" + exc.reason, evidence, connect)
        evidence.decision = decision
        self.ledger.add(ConsentRecord(call_id, evidence.uniqueid, decision, evidence))
        return GateOutcome(call_id, decision, None, evidence, self._policy.connects(decision))

    async def _converse(
        self, agi: AgiCommands, gate: ConsentGate, sound: str, log: CallLogAdapter
    ) -> None:
        """Answer, play, wait: feed every AGI result to the gate until it decides."""
        try:
            await agi.answer()
            gate.answered()
            gate.prompt_started()
            response = await self._play(agi, gate, sound)
            if response is None:
                return
            if response.digit:
                gate.digit(response.digit)
            gate.prompt_finished()
            await self._wait(agi, gate)
        except (AgiHangup, AgiDeadChannel):
            gate.hangup()
        except AgiError as exc:
            log.error("AGI failed during the disclosure: %s", safe(str(exc)))
            gate.prompt_failed("agi error")

    async def _play(self, agi: AgiCommands, gate: ConsentGate, sound: str) -> AgiResponse | None:
        """STREAM FILE; None when it failed on a live channel (the file is unplayable)."""
        try:
            return await agi.stream_file(sound, self._policy.escape_digits())
        except AgiHangup:
            if not await _still_up(agi):
                raise
            gate.prompt_failed(PLAYBACK_FAILED)
            return None

    async def _wait(self, agi: AgiCommands, gate: ConsentGate) -> None:
        while gate.decided is None:
            remaining = gate.remaining()
            wait_ms = MAX_WAIT_MS
            if remaining is not None:
                wait_ms = min(MAX_WAIT_MS, max(1, math.ceil(remaining * 1000)))
            digit = await agi.wait_for_digit(wait_ms)
            if digit and (
                len(gate.timeline.digits) < MAX_DIGITS or digit in self._policy.escape_digits()
            ):
                gate.digit(digit)

    async def _publish(self, agi: AgiCommands, outcome: GateOutcome) -> None:
        """Set the variables; dead channels still take SET VARIABLE (for the h extension)."""
        await agi.set_variable_quietly(ID_VARIABLE, outcome.call_id)
        if outcome.decision is not None:
            await agi.set_variable_quietly(CONSENT_VARIABLE, str(outcome.decision))
        else:
            await agi.set_variable_quietly(ERROR_VARIABLE, outcome.error or "failed")
        await agi.set_variable_quietly(CONNECT_VARIABLE, "yes" if outcome.connect else "no")

    def write_audit(self, outcome: GateOutcome) -> None:
        """The consent's audit line (``event: call``, ``stage: consent``)."""
        evidence = outcome.evidence
        if self._audit is None or evidence is None:
            return
        record = audit_record(
            "call",
            evidence=evidence,
            reason=outcome.error,
            call_id=outcome.call_id,
            stage="consent",
        )
        # The sink catches and logs a broken audit log itself (both sinks do).
        self._audit(record, dict(evidence.personal))


async def _still_up(agi: AgiCommands) -> bool:
    """After result=-1: does the channel still answer? (a missing file, not a hang-up)"""
    try:
        await agi.channel_status()
    except AgiError:
        return False
    return True


async def _linkedid(agi: AgiCommands, uniqueid: str) -> str:
    """The call's linkedid (not in the AGI environment), else the uniqueid."""
    value = await agi.get_variable_quietly("CHANNEL(linkedid)")
    return value if value and valid_uniqueid(value) else uniqueid
