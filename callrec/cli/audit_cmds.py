"""``callrec audit verify``: check the audit log's hash chain and its signatures.

Exit 0 when every line links to the one before (and, with ``--signer``, is
signed by one of those recorders); 3 when it does, but a line was torn by a
crash mid-write (stepped over, named: nothing after it is lost, the next
line chains to the one before it); 4 naming the first bad line by its line
number; 1 when the file cannot be read. The chain is in
:mod:`callrec.audit_chain` and docs/FORMAT.md ("Audit chain").
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from callrec.cli.common import (
    EXIT_INVALID,
    EXIT_OK,
    EXIT_TRUNCATED,
    CliError,
    add_signer_option,
    escape,
    load_signers,
)
from callrec.spool import os_reason

if TYPE_CHECKING:
    from callrec.audit_chain import ChainReport

_TAIL_NOTE = "deleting the last lines cannot be seen in the file itself: compare the head"
_TORN = (
    "torn write (a line cut short by a crash mid-write): stepped over, the next line "
    "must chain to the one before it"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "audit",
        description="Commands on the audit log (privacy.audit_log).",
    )
    commands = p.add_subparsers(dest="audit_command", metavar="SUBCOMMAND")
    commands.required = True
    v = commands.add_parser(
        "verify",
        help="check the audit log's hash chain and signatures",
        description="Checks that every line links to the line before it (an edited, deleted, "
        "inserted or moved line breaks the chain there) and that each signed line's "
        "signature holds. Prints the first bad line with its line number (exit 4), or a "
        "summary ending with the chain head (seq and digest): keep a copy of it elsewhere, "
        f"since {_TAIL_NOTE}. A line torn by a crash mid-write is named and stepped over, "
        "the rest still checked (exit 3 when nothing else is wrong).",
    )
    v.add_argument("file", metavar="FILE", help="the audit log (JSON Lines)")
    add_signer_option(v)
    v.add_argument(
        "--allow-unchained",
        type=_count,
        metavar="N",
        help="accept up to N unchained lines before the chain: a log kept from before callrec "
        "chained its lines (audit verify without --signer counts them as 'unprotected'). "
        "With --signer an unchained line fails otherwise (exit 4), as does a log with no "
        "chained line",
    )
    v.set_defaults(func=_verify)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a number of lines: {text!r}")
    return value


def _verify(args: argparse.Namespace) -> int:
    from callrec.audit_chain import verify_chain
    from callrec.user_files import open_regular

    trusted = load_signers(args.signer)
    path = Path(args.file)
    name = escape(str(path))
    try:
        with open_regular(path) as f:
            report = verify_chain(_numbered(f), trusted, allow_unchained=args.allow_unchained)
    except OSError as exc:
        raise CliError(f"{name}: {os_reason(exc)}") from None
    for number in report.torn:
        print(f"{name}: line {number}: {_TORN}")
    if report.bad is not None:
        where = f"line {report.bad.number}: " if report.bad.number else ""
        print(f"{name}: {where}{escape(report.bad.message)}")
        before = "before it " if report.bad.number else ""
        print(f"{report.chained} chained line(s) {before}verified")
        return EXIT_INVALID
    for line in _summary(name, report, checked=trusted is not None):
        print(line)
    return EXIT_TRUNCATED if report.torn else EXIT_OK


def _numbered(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, raw in enumerate(lines, 1):
        if raw.strip():
            yield number, raw


def _summary(name: str, report: ChainReport, *, checked: bool) -> list[str]:
    head = report.head
    lines = [f"{name}: chain intact: {report.chained} line(s), seq 1..{head.seq}"]
    signers = ", ".join(sorted(report.signers)) or "-"
    unsigned = report.chained - report.signed
    if checked:
        lines.append(f"signatures: all {report.signed} by trusted recorders ({signers})")
    else:
        lines.append(
            f"signatures: {report.signed} valid (by {signers}), {unsigned} unsigned; origin "
            "not checked: give --signer PUB to require a trusted recorder's signature"
        )
    if report.erased:
        orders = ", ".join(sorted(report.orders))
        attested = f" (attested: erasure order {orders})" if orders else ""
        lines.append(f"erased: {report.erased} line(s) without their personal fields{attested}")
    if report.legacy:
        lines.append(f"unprotected: {report.legacy} line(s) before the chain started")
    if report.torn:
        numbers = ", ".join(str(n) for n in report.torn)
        lines.append(
            f"torn: {len(report.torn)} line(s) cut short by a crash (line {numbers}), stepped "
            "over: the chain goes on past them, nothing after them is lost (exit 3)"
        )
    lines.append(f"head: seq {head.seq}, digest {head.digest} ({_TAIL_NOTE})")
    return lines
