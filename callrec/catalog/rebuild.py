"""Entering the audit log and the spool into the catalogue: rebuild and catch-up.

The audit log is the source of truth; the catalogue is an index of it that
can always be made again. ``callrec catalog rebuild`` enters every line of
the audit log and then every recording file of the spool no line named (a
file written by the classic AGI script's front end while no ``serve`` ran,
say), and marks MISSING the recordings whose file is gone without a known
deletion. ``callrec serve`` catches up at start with the lines a crash or an
outage kept from it (those past the last one entered).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.catalog.files import uri_path
from callrec.catalog.model import CatalogError, CatalogUnavailable, RecordingState
from callrec.catalog.store import Catalog
from callrec.logutil import safe
from callrec.spool import PART_SUFFIX, SEALED_SUFFIX, os_reason

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RebuildResult:
    """What a rebuild did, for the admin: lines and files entered, files not found."""

    lines: int  # audit lines read
    entered: int  # of those, lines of a call or a recording
    damaged: int  # lines that are not JSON objects (skipped; `callrec audit verify` names them)
    files: int  # recording files no line named, entered from their header
    missing: tuple[str, ...]  # recordings whose file is not where the catalogue says


class DamageCount:
    """How many lines a read skipped because they were not JSON objects."""

    def __init__(self) -> None:
        self.count = 0


def audit_lines(
    path: Path, after_seq: int | None = None, damage: DamageCount | None = None
) -> Iterator[dict[str, Any]]:
    """The lines of an audit log that parse, past ``after_seq`` when given.

    A damaged line is skipped and counted in ``damage`` (``callrec audit
    verify`` names it); a log that does not exist has no lines. Raises
    ``OSError`` when it cannot be read.
    """
    damage = damage or DamageCount()
    try:
        with Path(path).open("rb") as f:
            yield from _parsed(f, after_seq, damage)
    except FileNotFoundError:
        return


def _parsed(
    lines: Iterable[bytes], after_seq: int | None, damage: DamageCount
) -> Iterator[dict[str, Any]]:
    for raw in lines:
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            damage.count += 1
            continue
        if not isinstance(line, dict):
            damage.count += 1
            continue
        seq = line.get("seq")
        if after_seq is not None and isinstance(seq, int) and seq <= after_seq:
            continue
        yield line


def enter_audit_log(
    catalog: Catalog, path: Path, after_seq: int | None = None
) -> tuple[int, int, int]:
    """Enter the lines of ``path`` (past ``after_seq``); (lines read, entered, damaged).

    A line the catalogue refuses (its recording claimed by another recorder)
    is logged and skipped; an unreachable catalogue stops it
    (:class:`CatalogUnavailable`).
    """
    damage = DamageCount()
    read = entered = 0
    for line in audit_lines(path, after_seq, damage):
        read += 1
        try:
            if catalog.record_call(line):
                entered += 1
        except CatalogUnavailable:
            raise
        except CatalogError as exc:
            refused(line, exc)
    return read, entered, damage.count


def refused(line: Mapping[str, Any], exc: CatalogError) -> None:
    """Say which audit line could not be entered, and why."""
    logger.error("catalogue: audit line %s not entered: %s", safe(str(line.get("id")), 40), exc)


def spool_files(root: Path) -> Iterator[Path]:
    """Every recording in the dated spool (sealed, or adopted after a crash), in order."""
    for pattern in (
        f"[0-9]*/[0-9]*/[0-9]*/*{SEALED_SUFFIX}",
        f"[0-9]*/[0-9]*/[0-9]*/*{PART_SUFFIX}",
    ):
        yield from sorted(p for p in Path(root).glob(pattern) if p.is_file())


def rebuild(catalog: Catalog, audit_log: Path, spool: Path) -> RebuildResult:
    """Recreate this recorder's part of the catalogue from its audit log and spool.

    Safe on a catalogue that exists: every entry is idempotent, and holds,
    tombstones and erasure orders stay as they are. Raises ``OSError``
    (named by the CLI) when the audit log cannot be read.
    """
    assert catalog.recorder_id is not None
    catalog.register(spool)
    try:
        read, entered, damaged = enter_audit_log(catalog, audit_log)
    except OSError as exc:
        raise OSError(exc.errno, f"audit log {audit_log}: {os_reason(exc)}") from None
    files = sum(1 for path in spool_files(spool) if catalog.record_file(path))
    missing = []
    for entry in catalog.list(recorder=catalog.recorder_id):
        for rec in entry.recordings:
            if rec.state in (RecordingState.PRESENT, RecordingState.MISSING):
                rec = catalog.refresh_file(rec.recording_id)
            if rec.state is RecordingState.MISSING or (
                rec.state is RecordingState.HELD and not uri_path(rec.uri).is_file()
            ):
                missing.append(rec.recording_id)
    logger.info(
        "catalogue rebuilt for %s: %d audit lines, %d entered, %d files, %d missing",
        catalog.recorder_id, read, entered, files, len(missing),
    )  # fmt: skip
    return RebuildResult(read, entered, damaged, files, tuple(missing))
