"""``callrec retention run``: delete the recordings whose retention has passed.

What ``config/callrec-retention.service`` runs daily (with ``callrec subject
erase --carry-out``). The rules are ``[retention]`` (days, per dialled number
overrides); a recording on hold is never deleted. Each deletion writes an
access line, then removes the file, then leaves a tombstone in the
catalogue (:mod:`callrec.dpo.retention`). Exit 0 when everything expired is
deleted (or held), 1 when a deletion failed.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from callrec.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    Subcommands,
    add_command_group,
    add_config_option,
    escape,
    open_desk,
    warn,
)

if TYPE_CHECKING:
    from callrec.dpo.retention import Step


def register(sub: Subcommands) -> None:
    commands = add_command_group(sub, "retention", "Retention of recordings ([retention]).")
    r = commands.add_parser(
        "run",
        help="delete the recordings whose retention has passed (never one on hold)",
        description="Deletes every recording of this recorder older than its rule "
        '([retention] days, or [retention.numbers."N"] days for calls to N), counted from '
        "the recording's end: an access line, the file, then a tombstone in the catalogue "
        "(who, when, which rule). Prints one line per expired recording.",
    )
    r.add_argument(
        "--as-of",
        type=_as_of,
        metavar="DATE",
        help="judge as on this date (YYYY-MM-DD, midnight UTC, or an ISO 8601 time) "
        "instead of now",
    )
    r.add_argument(
        "--dry-run", action="store_true", help="print what would be deleted, delete nothing"
    )
    add_config_option(r)
    r.set_defaults(func=_run)


def _as_of(text: str) -> datetime:
    from callrec.dpo.retention import parse_as_of

    try:
        return parse_as_of(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from callrec.dpo.retention import Deleter, Outcome, expired

    as_of = args.as_of or datetime.now(UTC)
    with open_desk(args) as desk:
        entries = desk.catalog.list(recorder=desk.recorder_id)
        due = expired(entries, desk.config.retention, as_of, desk.recorder_id)
        steps = Deleter(desk.catalog, desk.access, desk.actor).run(due, dry_run=args.dry_run)
    for step in steps:
        _tell(step)
    counts = {outcome: sum(s.outcome is outcome for s in steps) for outcome in Outcome}
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    print(f"as of {as_of.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {summary or 'nothing has expired'}")
    return EXIT_ERROR if counts[Outcome.FAILED] else EXIT_OK


def _tell(step: Step) -> None:
    from callrec.dpo.retention import Outcome

    if step.outcome is Outcome.FAILED:
        warn("retention run", escape(step.describe()))
    else:
        print(escape(step.describe()))
