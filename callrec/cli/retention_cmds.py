"""``callrec retention run``: delete the recordings whose retention has passed.

What ``config/callrec-retention.service`` runs daily (with ``callrec subject
erase --carry-out``). The rules are ``[retention]`` (days, per dialled number
overrides); a recording on hold is never deleted. Each deletion writes an
access line, then removes the file, then leaves a tombstone in the
catalogue (:mod:`callrec.dpo.retention`). Exit 0 when everything expired is
deleted (or held), 1 when a deletion failed, 2 for a later ``--as-of`` than
now without ``--dry-run`` (it would delete recordings before their time).
A run first finishes the deletions an interrupted one left claimed
(:func:`callrec.dpo.deleting.finish_interrupted`).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from callrec.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    Subcommands,
    add_command_group,
    add_config_option,
    escape,
    open_desk,
    warn,
)

if TYPE_CHECKING:
    from callrec.catalog import RecordingEntry
    from callrec.dpo.deleting import Removal
    from callrec.dpo.desk import Desk
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
        "instead of now; a later date only with --dry-run",
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

    now = datetime.now(UTC)
    if args.as_of is not None and args.as_of > now and not args.dry_run:
        warn(
            "retention run",
            f"--as-of {args.as_of.astimezone(UTC):%Y-%m-%d %H:%M} UTC is in the future: it "
            "would delete recordings before their retention has passed; add --dry-run to "
            "preview that date",
        )
        return EXIT_USAGE
    as_of = args.as_of or now
    finished: list[tuple[RecordingEntry, Removal]] = []
    with open_desk(args) as desk:
        if not args.dry_run:
            finished = _finish_interrupted(desk)
        entries = desk.catalog.list(recorder=desk.recorder_id)
        due = expired(entries, desk.config.retention, as_of, desk.recorder_id)
        deleter = Deleter(desk.catalog, desk.access, desk.actor, as_of)
        steps = deleter.run(due, dry_run=args.dry_run)
    for step in steps:
        _tell(step)
    counts = {outcome: sum(s.outcome is outcome for s in steps) for outcome in Outcome}
    parts = [f"{n} {outcome}" for outcome, n in counts.items() if n]
    if finished:
        parts.append(f"{len(finished)} interrupted deletion(s) finished")
    summary = ", ".join(parts)
    print(f"as of {as_of.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {summary or 'nothing has expired'}")
    failed = counts[Outcome.FAILED] or any(not removal.done for _, removal in finished)
    return EXIT_ERROR if failed else EXIT_OK


def _finish_interrupted(desk: Desk) -> list[tuple[RecordingEntry, Removal]]:
    """Finish what a run stopped between claim and tombstone left, and say so."""
    from callrec.dpo.deleting import finish_interrupted

    finished = finish_interrupted(desk.catalog, desk.access, desk.actor, desk.recorder_id)
    for rec, removal in finished:
        rule = "" if rec.deletion is None else f" ({rec.deletion.rule})"
        said = f"{rec.recording_id} interrupted deletion{rule}"
        if removal.done:
            note = f": {removal.why}" if removal.why else ""
            print(escape(f"{said} finished{note}"))
        else:
            warn("retention run", escape(f"{said} failed: {removal.why}"))
    return finished


def _tell(step: Step) -> None:
    from callrec.dpo.retention import Outcome

    if step.outcome is Outcome.FAILED:
        warn("retention run", escape(step.describe()))
    else:
        print(escape(step.describe()))
