"""``callrec subject export`` and ``erase``: one caller's rights (GDPR Art. 15 and 17).

The caller is named by their number (``--number``), which is turned into
its pseudonym with the pseudonym key and never written or printed.
``export`` writes a folder to hand to them (:mod:`callrec.dpo.export`);
``erase`` orders every recorder to erase them and carries the order out
here (:mod:`callrec.dpo.erasure`); ``erase --carry-out`` carries out the
orders this recorder has not yet (the daily retention service runs it).
Both write an access line first (:mod:`callrec.dpo.access`) and need
``--reason``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from callrec.cli.common import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subcommands,
    add_command_group,
    add_config_option,
    add_key_options,
    add_reason_option,
    escape,
    exit_code,
    load_private_keys,
    open_desk,
    warn,
    worst,
)

if TYPE_CHECKING:
    from callrec.dpo.desk import Desk
    from callrec.dpo.erasure import CarriedOut, Eraser
    from callrec.dpo.export import Export


def register(sub: Subcommands) -> None:
    commands = add_command_group(
        sub,
        "subject",
        "A caller's rights: a copy of their recordings (export), erasure (erase).",
    )
    e = commands.add_parser(
        "export",
        help="a folder for the caller: their recordings (WAV), evidence (JSON), index.html",
        description="Finds every call from NUMBER (by its pseudonym, in the catalogue and the "
        "audit log), decrypts each recording on this machine into DIR as WAV with its consent "
        "evidence as JSON, and writes DIR/index.html, a page that opens offline in any "
        "browser and lists each call with an audio player. DIR must be new or empty; "
        "everything in it is mode 0600: hand it over, then delete it.",
    )
    _number(e)
    add_key_options(e)
    e.add_argument("--out", required=True, type=Path, metavar="DIR", help="a new folder")
    _reason(e, required=True)
    add_config_option(e)
    e.set_defaults(func=_export)
    r = commands.add_parser(
        "erase",
        help="erase a caller: their recordings, and their personal data in the audit log",
        description="Orders every recorder sharing the catalogue to erase the caller of NUMBER, "
        "and carries the order out on this one: deletes each recording (a tombstone stays "
        "in the catalogue), removes the caller's personal fields from the audit log (its "
        "chain still verifies) and from the catalogue. A recording on hold is kept and the "
        "order stays pending here until it is released (exit 0: a hold is lawful; exit 1 "
        "only when a file could not be deleted). --carry-out does the pending orders "
        "of this recorder (run it on each recorder; the retention service does, daily).",
    )
    who = r.add_mutually_exclusive_group(required=True)
    who.add_argument("--number", metavar="N", help="the caller's number, as they call from")
    who.add_argument(
        "--carry-out", action="store_true", help="carry out this recorder's pending orders"
    )
    _reason(r, required=False)
    add_config_option(r)
    r.set_defaults(func=_erase)


def _number(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--number", required=True, metavar="N", help="the caller's number, as they call from"
    )


def _reason(p: argparse.ArgumentParser, *, required: bool) -> None:
    add_reason_option(
        p,
        required=required,
        metavar="TEXT",
        help="why, for the access log: a ticket or request id (not the caller's name)",
    )


# --- export -----------------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    from callrec.dpo.access import Action
    from callrec.dpo.export import empty_folder, export_calls
    from callrec.dpo.page import INDEX, write_page
    from callrec.dpo.subjects import find_calls, pseudonym_of

    keys = load_private_keys(args.key, args)
    empty_folder(args.out)  # a folder that will not do fails before the access is logged
    with open_desk(args, keys, need_catalog=False) as desk:
        pseudonym = pseudonym_of(_checked_number(args.number), desk.config)
        calls = find_calls(desk.maybe_catalog, desk.audit_lines(), pseudonym)
        ids = [r.recording_id for c in calls for r in c.recordings if not r.deleted]
        desk.access.record(Action.SUBJECT_EXPORT, desk.actor, ids, args.reason)
        export = export_calls(calls, keys, args.out)
        write_page(export, args.number)
    _tell_export(export, pseudonym)
    print(f"open {escape(str(export.folder / INDEX))}")
    return _export_code(export)


def _tell_export(export: Export, pseudonym: str) -> None:
    recordings = export.recording_ids
    print(
        f"exported {len(export.calls)} call(s) of caller {pseudonym}, "
        f"{len(recordings)} recording(s), to {escape(str(export.folder))}"
    )
    for problem in export.problems:
        warn("subject export", escape(problem))


def _export_code(export: Export) -> int:
    return worst(
        exit_code(r.verdict) for c in export.calls for r in c.recordings if r.verdict is not None
    )


def _checked_number(number: str) -> str:
    from callrec.evidence import normalise_number

    if not normalise_number(number) or not number.isprintable():
        raise CliError("--number: give the caller's number, e.g. +49 30 1234567")
    return number


# --- erase ------------------------------------------------------------------------------


def _erase(args: argparse.Namespace) -> int:
    if args.number is not None and args.reason is None:
        warn("subject erase", "--reason is required with --number: say why (a ticket)")
        return EXIT_USAGE
    with open_desk(args) as desk:
        if args.carry_out:
            return _carry_out_pending(desk)
        return _erase_number(desk, args.number, args.reason)


def _erase_number(desk: Desk, number: str, reason: str) -> int:
    from callrec.dpo.subjects import pseudonym_of

    pseudonym = pseudonym_of(_checked_number(number), desk.config)
    eraser = _eraser(desk)
    order = eraser.order(pseudonym, reason)
    print(f"erasure order {order.order_id} for caller {pseudonym}")
    done = eraser.carry_out(order, desk.audit_lines())
    _tell(done, desk.recorder_id)
    return EXIT_ERROR if done.failed else EXIT_OK


def _carry_out_pending(desk: Desk) -> int:
    eraser = _eraser(desk)
    orders = desk.catalog.pending_erasure_orders(desk.recorder_id)
    if not orders:
        print(f"no erasure order pending on recorder {escape(desk.recorder_id)}")
    codes = []
    for order in orders:
        print(f"erasure order {order.order_id} for caller {order.caller_pseudonym}")
        done = eraser.carry_out(order, desk.audit_lines())
        _tell(done, desk.recorder_id)
        # A hold keeps an order pending lawfully: only a deletion that failed is an error.
        codes.append(EXIT_ERROR if done.failed else EXIT_OK)
    return worst(codes)


def _eraser(desk: Desk) -> Eraser:
    from callrec.dpo.erasure import Eraser

    audit = desk.config.privacy.audit_log
    return Eraser(desk.catalog, desk.access, desk.actor, desk.recorder_id, audit)


def _tell(done: CarriedOut, recorder: str) -> None:
    here = f"on recorder {escape(recorder)}"
    print(f"deleted {len(done.deleted)} recording(s) {here}: {' '.join(done.deleted) or '-'}")
    for rid in done.held:
        warn("subject erase", f"{rid} kept: on legal hold (release it, then --carry-out)")
    for rid, why in done.failed:
        warn("subject erase", f"{rid} not deleted: {escape(why)}")
    if done.confirmed:
        print(f"audit log: personal fields removed from {done.lines_erased} line(s)")
        print(f"order carried out and confirmed {here}")
    else:
        print(f"order still pending {here}: run `callrec subject erase --carry-out` again")
    waiting = [r for r in done.order.pending if r != recorder]
    if waiting:
        print(f"waiting for recorder(s): {', '.join(escape(r) for r in waiting)}")
