"""``callrec recordings list|show|hold|release``: the catalogue, as a DPO reads it.

``list`` prints the calls and recordings of the catalogue (``[catalog]
url``), by date, number, decision and recorder; ``--number`` is turned into
the caller's pseudonym with the pseudonym key, so no number is ever looked
up in clear. ``show`` prints one call (or recording) in full: its evidence,
each file's state now (present, signed, verified with ``--key``, on hold,
deleted by whom and when) and the erasure orders not yet carried out.
``hold``/``release`` put or lift a legal hold (the work and its access
line are in :mod:`callrec.dpo.holds`). Only the config's ``privacy`` and
``catalog`` sections are read, and no file it names is checked: a DPO may
run this away from the PBX, against a shared catalogue.
"""

from __future__ import annotations

import argparse
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from callrec.cli.common import (
    EXIT_OK,
    CliError,
    Subcommands,
    add_command_group,
    add_config_option,
    add_key_options,
    add_reason_option,
    config_file,
    escape,
    exit_code,
    load_private_keys,
    open_desk,
    worst,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from callrec.catalog import Catalog, Entry
    from callrec.config import Config
    from callrec.crypto.keys import PrivateKey

# callrec.consent.Decision's values (that module loads asyncio: too heavy for --help).
_DECISIONS = ("implied", "granted-dtmf", "declined-hangup", "declined-dtmf", "declined-timeout")


def _time(text: str, *, end_of_day: bool = False) -> datetime:
    """``YYYY-MM-DD`` (midnight UTC; with ``end_of_day`` the next midnight) or ISO 8601."""
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start + timedelta(days=1) if end_of_day else start
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM]"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _until(text: str) -> datetime:
    return _time(text, end_of_day=True)


def _config(args: argparse.Namespace) -> Config:
    from callrec.config import load_config

    path = config_file(args.config)
    return load_config(path, sections=("privacy", "catalog"), check_files=False)


def _catalog(config: Config) -> Catalog:
    from callrec.catalog import Catalog

    return Catalog.from_config(config)


def _pseudonym(config: Config, number: str) -> str:
    from callrec.crypto.keys import load_pseudonym_key
    from callrec.evidence import pseudonymise

    return pseudonymise(number, load_pseudonym_key(config.privacy.pseudonym_key))


def _list(args: argparse.Namespace) -> int:
    from callrec.catalog.present import entry_json, json_line, table

    config = _config(args)
    pseudonym = None if args.number is None else _pseudonym(config, args.number)
    with _catalog(config) as catalog:
        entries = catalog.list(args.since, args.until, pseudonym, args.decision, args.recorder)
    if args.json:
        for entry in entries:
            print(json_line(entry_json(entry)))
        return EXIT_OK
    for line in table(entries):
        print(line)
    calls = sum(1 for e in entries if e.call is not None)
    recordings = sum(len(e.recordings) for e in entries)
    print(f"{calls} call(s), {recordings} recording(s)")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    from callrec.catalog import RecordingState
    from callrec.catalog.present import check_file, entry_json, json_line, show

    config = _config(args)
    with _catalog(config) as catalog:
        entry = _entry(catalog, args.id)
        code = EXIT_OK
        if args.key:
            code = _verify(catalog, entry, load_private_keys(args.key, args))
            entry = _entry(catalog, args.id)
        present = [r for r in entry.recordings if r.state is not RecordingState.DELETED]
        checks = {r.recording_id: check_file(r) for r in present}
        pseudonym = entry.call.caller_pseudonym if entry.call else None
        orders = [] if pseudonym is None else catalog.erasure_orders(pseudonym)
    orders = [o for o in orders if o.pending]
    if args.json:
        shown = entry_json(entry)
        shown["files"] = {rid: {"present": c.present, "signature": c.signature,
                                "signer": c.signer, "changed": c.changed or None}
                          for rid, c in checks.items()}  # fmt: skip
        shown["pending_erasure_orders"] = [
            {"order_id": o.order_id, "requested_by": o.requested_by, "reason": o.reason,
             "requested_at": o.requested_at.isoformat(), "pending": list(o.pending)}
            for o in orders
        ]  # fmt: skip
        print(json_line(shown))
    else:
        for line in show(entry, checks, orders):
            print(line)
    return code


def _entry(catalog: Catalog, id: str) -> Entry:
    entry = catalog.get(id)
    if entry is None:
        raise CliError(f"no call or recording {escape(id)} in the catalogue")
    return entry


def _verify(catalog: Catalog, entry: Entry, keys: Sequence[PrivateKey]) -> int:
    """Verify each file there is with the key; remember each verdict in the catalogue."""
    from callrec.catalog import RecordingState
    from callrec.catalog.files import uri_path
    from callrec.recording.reader import verify

    codes = [EXIT_OK]
    for rec in entry.recordings:
        path = uri_path(rec.uri)
        if rec.state is RecordingState.DELETED or not path.is_file():
            continue
        result = verify(path, keys)
        catalog.set_verdict(rec.recording_id, str(result.verdict))
        codes.append(exit_code(result.verdict))
    return worst(codes)


def _hold(args: argparse.Namespace) -> int:
    from callrec.dpo.holds import hold

    with open_desk(args) as desk:
        ids = hold(desk, args.id, args.reason)
    print("held: " + ", ".join(ids))
    return EXIT_OK


def _release(args: argparse.Namespace) -> int:
    from callrec.dpo.holds import release

    with open_desk(args) as desk:
        ids = release(desk, args.id, args.reason)
    print("released: " + ", ".join(ids) if ids else f"{escape(args.id)}: nothing was on hold")
    return EXIT_OK


def register(sub: Subcommands) -> None:
    """Add ``recordings`` and its subcommands."""
    commands = add_command_group(
        sub,
        "recordings",
        "Find calls and recordings in the catalogue ([catalog] url), see one in "
        "full, put one on legal hold or release it.",
    )

    ls = commands.add_parser(
        "list",
        description="Calls and their recordings, oldest first, as a table or JSON lines. "
        "--until DATE includes that day.",
    )
    ls.add_argument("--since", type=_time, metavar="DATE", help="from this date or time (UTC)")
    ls.add_argument("--until", type=_until, metavar="DATE", help="up to this date or time (UTC)")
    ls.add_argument(
        "--number", metavar="N", help="calls from this caller number (matched by its pseudonym)"
    )
    ls.add_argument("--decision", choices=_DECISIONS, help="calls with this consent decision")
    ls.add_argument("--recorder", metavar="ID", help="entries of this recorder only")
    ls.add_argument("--json", action="store_true", help="one JSON object per call")
    add_config_option(ls)
    ls.set_defaults(func=_list)

    sh = commands.add_parser(
        "show",
        description="One call (or recording) in full: evidence, each file's state, pending "
        "erasure orders. With --key each file is verified too (exit 3 truncated, 4 invalid).",
    )
    sh.add_argument("id", metavar="ID", help="call id (or RECORDER/CALL) or recording id")
    sh.add_argument("--json", action="store_true", help="one JSON object")
    add_key_options(sh, required=False)
    add_config_option(sh)
    sh.set_defaults(func=_show)

    hd = commands.add_parser(
        "hold", description="Put a recording (or every recording of a call) on legal hold: "
        "never deleted, by retention or erasure, until released.",
    )  # fmt: skip
    hd.add_argument("id", metavar="ID", help="recording id or call id")
    add_reason_option(hd, required=True, help="why (access log)")
    add_config_option(hd)
    hd.set_defaults(func=_hold)

    rl = commands.add_parser("release", description="Lift a legal hold.")
    rl.add_argument("id", metavar="ID", help="recording id or call id")
    add_reason_option(rl, required=False, help="why (access log)")
    add_config_option(rl)
    rl.set_defaults(func=_release)
