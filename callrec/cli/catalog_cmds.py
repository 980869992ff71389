"""``callrec catalog rebuild``: recreate the catalogue from the spool and the audit log.

The audit log is the source of truth and the catalogue its index: a
catalogue lost, or one that missed lines while it was down, is made whole by
entering the audit log again and then every recording file of the spool.
Entries are idempotent, so rebuilding a catalogue that exists keeps its
holds, tombstones and erasure orders.
"""

from __future__ import annotations

import argparse

from callrec.cli.common import EXIT_OK, CliError, add_config_option, config_file, escape


def _rebuild(args: argparse.Namespace) -> int:
    from callrec.catalog import Catalog
    from callrec.catalog.db import redact
    from callrec.catalog.rebuild import rebuild
    from callrec.config import load_config

    config = load_config(
        config_file(args.config), sections=("recording", "privacy", "catalog"), check_files=False
    )
    with Catalog.from_config(config) as catalog:
        try:
            result = rebuild(catalog, config.privacy.audit_log, config.recording.spool)
        except OSError as exc:
            raise CliError(escape(str(exc.strerror or exc))) from None
    print(f"catalogue {redact(config.catalog.url)}, recorder {config.catalog.recorder_id}:")
    print(f"  {result.lines} audit lines read, {result.entered} of calls and recordings entered")
    if result.damaged:
        print(f"  {result.damaged} damaged audit lines skipped (callrec audit verify names them)")
    print(f"  {result.files} recording files no audit line named, entered from their header")
    for recording_id in result.missing:
        print(f"  missing: {recording_id} (its file is not where the catalogue says)")
    return EXIT_OK


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``catalog rebuild``."""
    p = sub.add_parser("catalog", description="Commands on the catalogue ([catalog] url).")
    commands = p.add_subparsers(dest="catalog_command", metavar="SUBCOMMAND")
    commands.required = True
    r = commands.add_parser(
        "rebuild",
        description="Enter this recorder's audit log and spool into the catalogue again "
        "(creating it when it does not exist). Holds, deletions and erasure orders stay.",
    )
    add_config_option(r)
    r.set_defaults(func=_rebuild)
