"""``callrec testcall``: prove against a real PBX that consent and recording behave."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from callrec.cli.common import (
    CONFIG_DEFAULT,
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    add_key_options,
    config_file_if_any,
    load_private_keys,
    read_passphrase_file,
)

if TYPE_CHECKING:
    from callrec.testcall.harness import Options
    from callrec.testcall.scenarios import Scenario

PASSWORD_ENV = "CALLREC_TEST_SIP_PASSWORD"  # noqa: S105 (a variable name)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "testcall",
        description=(
            "Places test calls with sipp (Debian package sip-tester; needs root or "
            "CAP_NET_RAW to play the caller's audio), then finds each call's audit line "
            "and recording and checks decision, encryption, duration, audio and evidence. "
            "Run it where the recorder's spool and audit log can be read."
        ),
    )
    p.add_argument("--list", action="store_true", help="list the scenarios and exit")
    p.add_argument("--target", metavar="HOST:PORT", help="the PBX's SIP address")
    p.add_argument("--exten", default="100", help="the extension to dial (default 100)")
    p.add_argument(
        "--config",
        metavar="FILE",
        help=f"callrec.toml: spool, audit log, timing ({CONFIG_DEFAULT}, if it exists)",
    )
    p.add_argument("--spool", metavar="DIR", help="the recorder's spool (default: config)")
    p.add_argument("--audit", metavar="FILE", help="the audit log (default: config)")
    add_key_options(p, required=False)
    p.add_argument("--scenario", action="append", metavar="NAME", help="run only these")
    p.add_argument("--user", help="SIP digest user, if the PBX challenges")
    p.add_argument(
        "--password-file",
        metavar="F",
        help=f"file holding the SIP digest password (else ${PASSWORD_ENV}); "
        "never on the command line, where ps shows it",
    )
    p.add_argument("--audio", metavar="WAV", help="what the caller says (default: built in)")
    p.add_argument("--disclosure", type=float, help="disclosure length, s (default: config)")
    p.add_argument("--grace", type=float, help="grace after it, s (default: config, else 2)")
    p.add_argument("--hangup-at", type=float, default=1.5, help="hangup scenario: s after answer")
    p.add_argument("--digit-at", type=float, default=1.5, help="optout scenario: s after answer")
    p.add_argument("--optout-digit", help="default: config, else 2")
    p.add_argument("--talk", type=float, default=6.0, help="s of talk after consent")
    p.add_argument("--long", type=float, default=60.0, help="s of talk in the long scenario")
    p.add_argument("--local-ip", default="127.0.0.1", help="sipp's local address")
    p.add_argument("--wait", type=float, default=20.0, help="s to wait for the audit line")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML here")
    p.set_defaults(func=_testcall)


def _testcall(args: argparse.Namespace) -> int:
    import asyncio

    from callrec.testcall.options import config_for, load_options, scenarios_for

    args.config = config_file_if_any(args.config)
    cfg = config_for(args)
    scenarios = scenarios_for(args, cfg)
    if args.list:
        for s in scenarios.values():
            print(f"{s.name:8}  {s.proves}")
        return EXIT_OK
    if not args.target or not args.key:
        raise CliError("--target and --key are needed to place and check calls")
    password = os.environ.get(PASSWORD_ENV)
    if args.password_file:
        password = read_passphrase_file(args.password_file).decode()
    opts = load_options(args, cfg, load_private_keys(args.key, args), password)
    wanted = args.scenario or list(scenarios)
    unknown = [n for n in wanted if n not in scenarios]
    if unknown:
        raise CliError(f"unknown scenario {unknown[0]!r}; see 'callrec testcall --list'")
    return asyncio.run(_run([scenarios[n] for n in wanted], opts, args.junit))


async def _run(scenarios: list[Scenario], opts: Options, junit: str | None) -> int:
    from callrec.testcall.harness import run_all
    from callrec.testcall.report import table, write_junit

    reports = await run_all(scenarios, opts)
    print(table(reports))
    if junit:
        write_junit(reports, Path(junit))
    return EXIT_OK if all(r.ok for r in reports) else EXIT_ERROR
