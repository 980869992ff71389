"""Commands that read sealed recordings back: decrypt, verify, inspect, export-tink.

Everything printed from inside a recording goes through ``escape`` (text) or
``json.dumps(ensure_ascii=True)``: a caller ID is attacker-controlled.
Decrypted files are 0600 and hold only what the reader verified. With
``--signer`` a file not signed by one of those recorders is rejected (exit 4)
and ``decrypt`` writes nothing for it; without, every output says the
origin was not checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callrec import logutil
from callrec.cli.common import (
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_TRUNCATED,
    ORIGIN_NOT_CHECKED,
    CliError,
    OriginCheck,
    add_key_options,
    add_signer_option,
    check_origin,
    escape,
    exit_code,
    load_private_keys,
    load_signers,
    private_dir,
    recording_stem,
    warn,
    worst,
    write_private,
)
from callrec.clock import iso_utc
from callrec.errors import CallrecError, FormatError

if TYPE_CHECKING:
    from callrec.crypto.keys import PrivateKey
    from callrec.recording import Header
    from callrec.recording.origin import Origin

Trusted = frozenset[bytes] | None  # key ids of the --signer recorders; None: not checked

_COPY_CHUNK = 1 << 20


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_decrypt(sub)
    p = sub.add_parser(
        "verify",
        help="check sealed recordings, print a summary table",
        description="Decrypts and checks every segment of each file (nothing is written); "
        "prints FILE VERDICT SECONDS SEGMENTS ORIGIN ERROR per file. Exit code: the worst "
        "verdict. ORIGIN is the signature: signed:KEYID (not checked), trusted:KEYID or "
        "untrusted:KEYID (with --signer), unsigned, missing (never sealed) or bad.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=".crec or .crec.part files")
    add_key_options(p)
    add_signer_option(p)
    p.set_defaults(func=_verify)
    p = sub.add_parser(
        "inspect",
        help="show a recording's header (and, with --key, its metadata)",
        description="The public header needs no key; recipients are shown by key id.",
    )
    p.add_argument("file", metavar="FILE")
    add_key_options(p, required=False)
    add_signer_option(p)
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_inspect)
    p = sub.add_parser(
        "export-tink",
        help="export a recording's stream for any Tink implementation",
        description="Writes DIR/keyset.json (a Tink cleartext keyset holding this recording's "
        "data key: guard it like the audio), DIR/stream.bin (the Tink stream, a byte slice "
        "of the .crec) and DIR/associated_data.bin.",
    )
    p.add_argument("file", metavar="FILE")
    add_key_options(p)
    p.add_argument("--out", required=True, metavar="DIR")
    p.set_defaults(func=_export_tink)


def _register_decrypt(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "decrypt",
        help="decrypt recordings to WAV or FLAC plus a JSON metadata file",
        description="Writes OUT (16-bit WAV or FLAC by its extension) and OUT with .json "
        "(metadata records, pauses, gaps, verdict). A truncated recording still gives "
        "its verified part (exit 3); an invalid one gives only what came before the "
        "failure (exit 4).",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help=".crec or .crec.part files")
    add_key_options(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file for one input, folder for several (default: beside the input)",
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")
    add_signer_option(p)
    p.set_defaults(func=_decrypt)


# --- decrypt ------------------------------------------------------------------------


def _decrypt(args: argparse.Namespace) -> int:
    keys = load_private_keys(args.key, args)
    trusted = load_signers(args.signer)
    inputs = [Path(f) for f in args.files]
    codes = []
    for src, dst in zip(inputs, _targets(inputs, args.output), strict=True):
        try:
            codes.append(_decrypt_one(src, dst, keys, args.force, trusted))
        except (CallrecError, OSError) as exc:
            codes.append(_report("decrypt", src, exc))
    return worst(codes)


def _report(command: str, src: Path, exc: BaseException) -> int:
    """One file's error as a line on stderr; its exit code."""
    warn(command, f"{escape(str(src))}: {escape(str(exc))}")
    return _error_code(exc, src)


def _error_code(exc: BaseException, src: Path) -> int:
    if isinstance(exc, FormatError):
        from callrec.recording import is_sealed_name, judge

        return exit_code(judge(exc, is_sealed_name(src)))
    return EXIT_ERROR


def _existing(path: Path) -> Path:
    """``path`` if it is a file: a missing input is a usage slip, not a damaged recording."""
    if not path.exists():
        raise CliError(f"{escape(str(path))}: no such file")
    if not path.is_file():
        raise CliError(f"{escape(str(path))}: not a regular file")
    return path


def _targets(inputs: list[Path], output: str | None) -> list[Path]:
    names = [f"{recording_stem(src)}.wav" for src in inputs]
    if output is None:
        return [src.with_name(name) for src, name in zip(inputs, names, strict=True)]
    out = Path(output)
    if len(inputs) == 1 and not out.is_dir() and not output.endswith("/"):
        return [out]
    private_dir(out)
    if len(set(names)) != len(names):
        raise CliError("two inputs would decrypt to the same file name in the -o folder")
    return [out / name for name in names]


def _decrypt_one(
    src: Path, dst: Path, keys: list[PrivateKey], force: bool, trusted: Trusted
) -> int:
    from callrec.decode import render_file
    from callrec.recording import RecordingReader, is_sealed_name

    meta_path = dst.with_suffix(".json")
    if not force:
        for path in (dst, meta_path):
            if path.exists():
                raise CliError(f"refusing to overwrite {path} (use --force)")
    with RecordingReader(_existing(src), keys) as reader:
        header = reader.header
        origin = check_origin(reader.origin, trusted, is_sealed_name(src))
        if origin.rejected:  # checked before anything is decrypted or written
            warn("decrypt", f"{escape(str(src))}: {escape(origin.rejected)}; nothing written")
            return EXIT_INVALID
        decoded, frames_written = render_file(reader, dst)
        seconds = frames_written / header.sample_rate
        record = {
            "file": src.name,
            **_header_dict(header),
            "verdict": str(reader.verdict),
            "error": None if reader.error is None else str(reader.error),
            **_origin_dict(reader.origin, origin, trusted),
            "segments_verified": reader.segments_verified,
            "audio_seconds": reader.audio_seconds,
            "output_seconds": seconds,
            "undecodable_tail_bytes": decoded.leftover,
            "metadata": decoded.metadata,
            "events": decoded.events,
        }
        write_private(meta_path, _json(record).encode("ascii") + b"\n")
        code = exit_code(reader.verdict)
        if code:
            warn(
                "decrypt",
                f"{escape(str(src))}: {reader.verdict}: {escape(str(reader.error))}; "
                f"wrote the {seconds:.2f} s verified before it",
            )
    said = origin.label if trusted is not None else f"origin not checked: {origin.label}"
    print(f"{escape(str(src))} -> {escape(str(dst))} ({seconds:.2f} s, {reader.verdict}, {said})")
    return code


def _header_dict(header: Header) -> dict[str, Any]:
    return {
        "version": header.version,
        "recording_id": header.recording_id,
        "codec": str(header.codec),
        "sample_rate": header.sample_rate,
        "channels": header.channels,
        "created_at": iso_utc(header.created_at),
        "recipients": [{"key_id": r.key_id, "kem": r.kem} for r in header.recipients],
        "header_size": header.header_size,
        "signer": header.signer,
    }


def _origin_dict(origin: Origin, check: OriginCheck, trusted: Trusted) -> dict[str, Any]:
    """The signature as the JSON outputs show it."""
    return {
        "signature": str(origin.signature),
        "signature_error": None if origin.error is None else origin.error.message,
        "origin": check.label,
        "origin_checked": trusted is not None,
        "rejected": check.rejected or None,
    }


def _json(value: Any) -> str:
    # ensure_ascii: hostile strings reach a terminal or log only as \u escapes.
    return json.dumps(value, indent=2, ensure_ascii=True, default=str)


# --- verify -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Row:
    file: str
    verdict: str
    seconds: float | None
    segments: int | None
    error: str
    code: int
    origin: str = "-"


def _verify(args: argparse.Namespace) -> int:
    keys = load_private_keys(args.key, args)
    trusted = load_signers(args.signer)
    progress = sys.stderr.isatty()
    rows = []
    total = len(args.files)
    for i, name in enumerate(args.files, 1):
        if progress:
            print(f"\rverifying {i}/{total}", end="", file=sys.stderr, flush=True)
        rows.append(_verify_row(Path(name), keys, trusted))
    if progress:
        print("\r\033[K", end="", file=sys.stderr, flush=True)
    _print_table(rows, trusted is not None)
    return worst(row.code for row in rows)


def _verify_row(path: Path, keys: list[PrivateKey], trusted: Trusted) -> _Row:
    from callrec.recording import is_sealed_name, verify

    try:
        result = verify(_existing(path), keys)
    except (CallrecError, OSError) as exc:
        code = _error_code(exc, path)
        verdict = {EXIT_TRUNCATED: "truncated", EXIT_INVALID: "invalid"}.get(code, "error")
        return _Row(str(path), verdict, None, None, str(exc), code)
    origin = check_origin(result.origin, trusted, is_sealed_name(path))
    error = "" if result.error is None else str(result.error)
    verdict, error, code = origin.apply(str(result.verdict), error, exit_code(result.verdict))
    return _Row(
        str(path), verdict, result.audio_seconds, result.segments, error, code, origin.label
    )


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
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    summary = ", ".join(f"{n} {v}" for v, n in sorted(counts.items()))
    print(f"{len(rows)} file{'s' if len(rows) != 1 else ''}: {summary}")


# --- inspect ------------------------------------------------------------------------


def _inspect(args: argparse.Namespace) -> int:
    path = Path(args.file)
    keys = load_private_keys(args.key, args) if args.key else []
    trusted = load_signers(args.signer)
    try:
        info, code = _inspect_info(path, keys, trusted)
    except (CallrecError, OSError) as exc:
        return _report("inspect", path, exc)
    if args.json:
        print(_json(info))
    else:
        for line in _text_lines(info):
            print(line)
    if info["rejected"]:
        warn("inspect", f"{escape(str(path))}: {escape(info['rejected'])}")
    elif trusted is None:
        warn("inspect", ORIGIN_NOT_CHECKED)
    return code


def _inspect_info(
    path: Path, keys: list[PrivateKey], trusted: Trusted
) -> tuple[dict[str, Any], int]:
    """The header, the signature (no key needed) and with keys the metadata; the exit code."""
    from callrec.recording import MetadataFrame, RecordingReader, is_sealed_name, judge
    from callrec.recording.origin import origin_of

    sealed = is_sealed_name(path)
    if not keys:
        parsed, origin = origin_of(_existing(path))
        info = {"file": str(path), **_header_dict(parsed.header)}
        code = 0 if origin.error is None else exit_code(judge(origin.error, sealed))
    else:
        with RecordingReader(_existing(path), keys) as reader:
            info = {"file": str(path), **_header_dict(reader.header)}
            records = [f.record for f in reader.frames() if isinstance(f, MetadataFrame)]
            info["verdict"] = str(reader.verdict)
            info["error"] = None if reader.error is None else str(reader.error)
            info["audio_seconds"] = reader.audio_seconds
            info["segments_verified"] = reader.segments_verified
            info["metadata"] = records
            origin, code = reader.origin, exit_code(reader.verdict)
    check = check_origin(origin, trusted, sealed)
    info.update(_origin_dict(origin, check, trusted))
    return info, check.apply("", "", code)[2]


def _text_lines(value: Any, key: str = "", indent: str = "") -> list[str]:
    """A nested value as ``key: value`` lines, every string escaped and quoted."""
    label = escape(key)
    if isinstance(value, dict):
        lines = [f"{indent}{label}:"] if key else []
        sub = indent + "  " if key else indent
        for k, v in value.items():
            lines += _text_lines(v, str(k), sub)
        return lines
    if isinstance(value, list):
        lines = [f"{indent}{label}:" + (" []" if not value else "")]
        for i, v in enumerate(value):
            lines += _text_lines(v, f"[{i}]", indent + "  ")
        return lines
    return [f"{indent}{label}: {_scalar(value)}"]


def _scalar(value: Any) -> str:
    if isinstance(value, str):
        return '"' + logutil.escape(value, quotes='"') + '"'
    return json.dumps(value, ensure_ascii=True, default=str)


# --- export-tink --------------------------------------------------------------------


def _export_tink(args: argparse.Namespace) -> int:
    from callrec.recording import export_tink

    path = Path(args.file)
    keys = load_private_keys(args.key, args)
    try:
        export = export_tink(_existing(path), keys)
    except FormatError as exc:
        return _report("export-tink", path, exc)
    out = private_dir(Path(args.out))
    write_private(out / "keyset.json", export.keyset_json.encode("utf-8"))
    write_private(out / "associated_data.bin", export.associated_data)
    _copy_slice(path, export.stream_offset, export.stream_length, out / "stream.bin")
    print(f"wrote {escape(str(out))}/keyset.json, stream.bin, associated_data.bin")
    warn("export-tink", "keyset.json holds the recording's data key in clear: guard it")
    return 0


def _copy_slice(src: Path, offset: int, length: int, dst: Path) -> None:
    from callrec.audio import open_private

    with src.open("rb") as fin, os.fdopen(open_private(dst), "wb") as fout:
        fin.seek(offset)
        left = length
        while left > 0:
            chunk = fin.read(min(left, _COPY_CHUNK))
            if not chunk:
                raise CliError(f"{src} ended {left} bytes before the stream's end")
            fout.write(chunk)
            left -= len(chunk)
