"""``callrec audit verify``: check the audit log's hash chain and its signatures.

Exit 0 when every line links to the one before (and, with ``--signer``, is
signed by one of those recorders); 4 naming the first bad line by its line
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
    CliError,
    add_signer_option,
    escape,
    load_signers,
)
from callrec.spool import os_reason

if TYPE_CHECKING:
    from callrec.audit_chain import ChainReport

_TAIL_NOTE = "deleting the last lines cannot be seen in the file itself: compare the head"


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
        f"since {_TAIL_NOTE}.",
    )
    v.add_argument("file", metavar="FILE", help="the audit log (JSON Lines)")
    add_signer_option(v)
    v.set_defaults(func=_verify)


def _verify(args: argparse.Namespace) -> int:
    from callrec.audit_chain import verify_chain
    from callrec.user_files import open_regular

    trusted = load_signers(args.signer)
    path = Path(args.file)
    name = escape(str(path))
    try:
        with open_regular(path) as f:
            report = verify_chain(_numbered(f), trusted)
    except OSError as exc:
        raise CliError(f"{name}: {os_reason(exc)}") from None
    if report.bad is not None:
        print(f"{name}: line {report.bad.number}: {escape(report.bad.message)}")
        print(f"{report.chained} chained line(s) before it verified")
        return EXIT_INVALID
    for line in _summary(name, report, checked=trusted is not None):
        print(line)
    return EXIT_OK


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
        lines.append(f"erased: {report.erased} line(s) without their personal fields")
    if report.legacy:
        lines.append(f"unprotected: {report.legacy} line(s) before the chain started")
    lines.append(f"head: seq {head.seq}, digest {head.digest} ({_TAIL_NOTE})")
    return lines
