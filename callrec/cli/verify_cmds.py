"""``callrec verify``: check sealed recordings, one file, many, or a whole spool.

Folders are searched recursively for ``.crec`` and ``.crec.part`` files. The
text output is a table and a summary; ``--json`` prints one JSON object per
file as it is checked (JSON Lines) and a summary object last, for scripts
and monitoring. Either way the exit code is the worst verdict.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from typing import TYPE_CHECKING, Any

from callrec.cli.common import (
    EXIT_INVALID,
    EXIT_TRUNCATED,
    ORIGIN_NOT_CHECKED,
    Input,
    Progress,
    Trusted,
    add_key_options,
    add_signer_option,
    check_origin,
    error_code,
    escape,
    exit_code,
    load_private_keys,
    load_signers,
    recordings,
    worst,
)
from callrec.errors import CallrecError

if TYPE_CHECKING:
    from callrec.crypto.keys import PrivateKey


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "verify",
        description="Decrypts and checks every segment of each file (nothing is written); "
        "a FOLDER stands for every .crec and .crec.part below it. Prints FILE VERDICT "
        "SECONDS SEGMENTS ORIGIN ERROR per file, or with --json one JSON object per file "
        "and a summary object. Exit code: the worst verdict. ORIGIN is the signature: "
        "signed:KEYID (not checked), trusted:KEYID or untrusted:KEYID (with --signer), "
        "unsigned, missing (never sealed) or bad. On a terminal a counter shows progress.",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help=".crec or .crec.part files, or folders"
    )
    add_key_options(p)
    add_signer_option(p)
    p.add_argument(
        "--json",
        action="store_true",
        help="JSON Lines: per file {type: file, path, verdict, exit_code, audio_seconds, "
        "segments, signature, signer, origin, origin_checked, error, seconds_taken}, "
        "then {type: summary, files, verdicts, exit_code, origin_checked}",
    )
    p.set_defaults(func=_verify)


@dataclasses.dataclass(frozen=True)
class _Row:
    """One file's outcome; ``taken`` is how long checking it took, in seconds."""

    file: str
    verdict: str
    seconds: float | None
    segments: int | None
    error: str
    code: int
    origin: str = "-"
    signature: str | None = None
    signer: str | None = None
    taken: float = 0.0

    def json(self, origin_checked: bool) -> dict[str, Any]:
        return {
            "type": "file",
            "path": self.file,
            "verdict": self.verdict,
            "exit_code": self.code,
            "audio_seconds": self.seconds,
            "segments": self.segments,
            "signature": self.signature,
            "signer": self.signer,
            "origin": None if self.origin == "-" else self.origin,
            "origin_checked": origin_checked,
            "error": self.error or None,
            "seconds_taken": round(self.taken, 3),
        }


def _verify(args: argparse.Namespace) -> int:
    keys = load_private_keys(args.key, args)
    trusted = load_signers(args.signer)
    inputs = recordings(args.files)
    progress = Progress("verifying", len(inputs))
    rows = []
    for i, item in enumerate(inputs, 1):
        progress.show(i)
        rows.append(_timed_row(item, keys, trusted))
        if args.json:
            progress.clear()
            print(_json_line(rows[-1].json(trusted is not None)), flush=True)
    progress.clear()
    if args.json:
        print(_json_line(_summary(rows, trusted is not None)))
    else:
        _print_table(rows, trusted is not None)
    return worst(row.code for row in rows)


def _timed_row(item: Input, keys: list[PrivateKey], trusted: Trusted) -> _Row:
    start = time.monotonic()
    row = _verify_row(item, keys, trusted)
    return dataclasses.replace(row, taken=time.monotonic() - start)


def _verify_row(item: Input, keys: list[PrivateKey], trusted: Trusted) -> _Row:
    from callrec.recording import is_sealed_name, verify

    path = item.path
    try:
        result = verify(item.file(), keys)
    except (CallrecError, OSError) as exc:
        code = error_code(exc, path)
        verdict = {EXIT_TRUNCATED: "truncated", EXIT_INVALID: "invalid"}.get(code, "error")
        return _Row(str(path), verdict, None, None, str(exc), code)
    origin = check_origin(result.origin, trusted, is_sealed_name(path))
    error = "" if result.error is None else str(result.error)
    verdict, error, code = origin.apply(str(result.verdict), error, exit_code(result.verdict))
    return _Row(
        str(path),
        verdict,
        result.audio_seconds,
        result.segments,
        error,
        code,
        origin.label,
        None if result.origin is None else str(result.origin.signature),
        None if result.origin is None else result.origin.fingerprint,
    )


def _json_line(value: dict[str, Any]) -> str:
    # ensure_ascii: a hostile file name reaches the terminal only as \u escapes.
    return json.dumps(value, ensure_ascii=True)


def _counts(rows: list[_Row]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    return dict(sorted(counts.items()))


def _summary(rows: list[_Row], origin_checked: bool) -> dict[str, Any]:
    return {
        "type": "summary",
        "files": len(rows),
        "verdicts": _counts(rows),
        "exit_code": worst(r.code for r in rows),
        "origin_checked": origin_checked,
    }


def _print_table(rows: list[_Row], origin_checked: bool) -> None:
    table = [("FILE", "VERDICT", "SECONDS", "SEGMENTS", "ORIGIN", "ERROR")]
    for r in rows:
        seconds = "-" if r.seconds is None else f"{r.seconds:.1f}"
        segments = "-" if r.segments is None else str(r.segments)
        row = (escape(r.file), r.verdict, seconds, segments, r.origin, escape(r.error))
        table.append(row)
    widths = [max(len(line[i]) for line in table) for i in range(5)]
    for line in table:
        cells = [
            line[i].ljust(widths[i]) if i != 2 else line[i].rjust(widths[i]) for i in range(5)
        ]
        print("  ".join([*cells, line[5]]).rstrip())
    if not origin_checked:
        print(ORIGIN_NOT_CHECKED)
    summary = ", ".join(f"{n} {v}" for v, n in _counts(rows).items())
    print(f"{len(rows)} file{'s' if len(rows) != 1 else ''}: {summary}")
