"""``callrec-agi``: the consent gate as a classic agi-bin script (no ARI, no recording).

Dialplan: ``AGI(callrec-agi)`` or ``AGI(callrec-agi,--config,/etc/callrec/callrec.toml)``.
It runs the same gate as the FastAGI server (:class:`agi.gate.AgiConsent`)
over stdin/stdout through pyst2's ``asterisk.agi.AGI`` class, which reads the
environment and turns Asterisk's SIGHUP into a flag. The wire format (quoting,
responses, 510/511/520, ``result=-1``) is :mod:`agi.protocol`'s, so both
modes read Asterisk the same way.

pyst2 echoes every environment line and command to stderr, which Asterisk
writes into its own log; that would put caller names unescaped into the
PBX log, so its stderr goes nowhere and our own log lines (escaped, numbers
masked) go to stderr at WARNING and above.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from asterisk.agi import AGI, AGISIGHUPHangup

from agi.gate import ERROR_VARIABLE, AgiConsent, AuditSink
from agi.protocol import (
    AgiCommands,
    AgiEnvironment,
    AgiResponse,
    ResponseParser,
    decode_line,
    format_command,
)
from callrec.audit import AuditLog
from callrec.clock import SYSTEM_CLOCK
from callrec.config import Config, load_config
from callrec.config_path import CONFIG_ENV, DEFAULT_CONFIG, default_config_path
from callrec.crypto.keys import load_pseudonym_key
from callrec.errors import AgiHangup, CallrecError
from callrec.logutil import safe

logger = logging.getLogger("callrec.agi")

EXIT_OK = 0
EXIT_FAILED = 1


class PystAgi(AgiCommands):
    """:class:`AgiCommands` over pyst2's AGI object (blocking I/O in a worker thread)."""

    def __init__(self, agi: Any) -> None:
        self._agi = agi
        self.hung_up = False

    @property
    def environment(self) -> AgiEnvironment:
        return AgiEnvironment({str(k): str(v) for k, v in self._agi.env.items()})

    async def execute(self, command: str, *args: str | int) -> AgiResponse:
        line = format_command(command, *args)
        return await asyncio.to_thread(self._execute, command, line)

    def _execute(self, command: str, line: str) -> AgiResponse:
        if not self.hung_up:
            try:
                self._agi.test_hangup()
            except AGISIGHUPHangup as exc:
                # News once: dead-channel commands (SET VARIABLE) still run after it.
                self.hung_up = True
                raise AgiHangup(command, "channel hung up (SIGHUP)") from exc
        try:
            self._agi.send_command(line.rstrip("\n"))
        except OSError as exc:
            self.hung_up = True
            raise AgiHangup(command, "connection closed") from exc
        parser = ResponseParser(command, hung_up=self.hung_up)
        try:
            while True:
                raw = self._agi.stdin.readline()
                response = parser.feed(decode_line(_as_bytes(raw), command))
                if response is not None:
                    return response
        except AgiHangup:
            self.hung_up = True
            raise


def _as_bytes(raw: str | bytes) -> bytes:
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogateescape")


def _stdio() -> tuple[TextIO, TextIO]:
    # UTF-8 whatever the locale; Asterisk replaces bad bytes already (trace 09),
    # and one that slips through must not kill the gate.
    stdin = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="replace", newline="\n")
    stdout = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="\n")
    return stdin, stdout


def make_audit(config: Config) -> AuditSink:
    log = AuditLog(
        config.privacy.audit_log, config.recipient_keys(), signer=config.recording_signer()
    )

    def append(record: dict[str, Any], personal: dict[str, str]) -> None:
        # As CallContext.append_audit: a broken audit log never fails the call.
        try:
            log.append(record, personal)
        except (CallrecError, OSError) as exc:
            logger.error("audit log %s: cannot append: %s", log.path, safe(str(exc), 200))

    return append


async def run_gate(agi: PystAgi, config: Config) -> int:
    """Run the consent gate once; the dialplan gets the variables either way."""
    try:
        key = load_pseudonym_key(config.privacy.pseudonym_key)
        audit = make_audit(config)
    except (CallrecError, OSError) as exc:
        logger.error("callrec-agi cannot start: %s", safe(str(exc), 200))
        await agi.set_variable_quietly(ERROR_VARIABLE, "config")
        return EXIT_FAILED
    gate = AgiConsent(config, key, SYSTEM_CLOCK, audit=audit)
    outcome = await gate.run(agi, agi.environment)
    return EXIT_OK if outcome.error is None else EXIT_FAILED


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="callrec-agi", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--config",
        type=Path,
        default=default_config_path(),
        help=f"callrec.toml (default: ${CONFIG_ENV} or {DEFAULT_CONFIG})",
    )
    return parser.parse_args(list(argv))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="callrec-agi: %(message)s"
    )
    stdin, stdout = _stdio()
    pyst = AGI(stdin=stdin, stdout=stdout, stderr=io.StringIO())
    agi = PystAgi(pyst)
    try:
        config = load_config(args.config, need_ari=False)
    except CallrecError as exc:
        logger.error("%s", safe(str(exc), 400))
        asyncio.run(agi.set_variable_quietly(ERROR_VARIABLE, "config"))
        return EXIT_FAILED
    return asyncio.run(run_gate(agi, config))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
