"""Commands that read sealed recordings back: decrypt, inspect, export-tink.

(``verify`` is in :mod:`.verify_cmds`.) ``decrypt`` takes folders too: every
``.crec`` and ``.crec.part`` below one is decrypted into the same place below
``-o DIR``, and no two inputs, nor (without ``--force``) an earlier run, are
ever overwritten.

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
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callrec import logutil
from callrec.cli.common import (
    ACCEPT_UNSEALED,
    EXIT_INVALID,
    EXIT_USAGE,
    ORIGIN_NOT_CHECKED,
    CliError,
    Input,
    OriginCheck,
    Progress,
    Trusted,
    add_config_option,
    add_key_options,
    add_signer_option,
    check_origin,
    config_file_if_any,
    error_code,
    escape,
    existing_file,
    exit_code,
    load_private_keys,
    load_signers,
    private_dir,
    recording_stem,
    recordings,
    warn,
    worst,
    write_private,
)
from callrec.dpo.reason import reason_value
from callrec.errors import CallrecError, FormatError
from callrec.media.layout import ChannelPick, describe

if TYPE_CHECKING:
    from callrec.crypto.keys import PrivateKey
    from callrec.recording import Header
    from callrec.recording.origin import Origin

_COPY_CHUNK = 1 << 20
_MIRRORED = (
    "the recordings below it are decrypted into the same tree of folders there, "
    "never beside the encrypted files"
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    _register_decrypt(sub)
    p = sub.add_parser(
        "inspect",
        description="The public header needs no key; recipients are shown by key id.",
    )
    p.add_argument("file", metavar="FILE")
    add_key_options(p, required=False)
    add_signer_option(p)
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(func=_inspect)
    p = sub.add_parser(
        "export-tink",
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
        description="Writes OUT (16-bit WAV or FLAC by its extension) and OUT with .json "
        "(metadata records, pauses, gaps, verdict). A truncated recording still gives "
        "its verified part (exit 3); an invalid one gives only what came before the "
        "failure (exit 4). A FOLDER stands for every .crec and .crec.part below it and "
        f"needs -o DIR: {_MIRRORED}. On a terminal a counter shows progress.",
    )
    p.add_argument(
        "files", nargs="+", metavar="FILE", help=".crec or .crec.part files, or folders"
    )
    add_key_options(p)
    p.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file for one input, folder for several or for folders "
        "(default: beside the input)",
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument(
        "--channel",
        choices=[str(pick) for pick in ChannelPick],
        help="write one channel: a stereo recording's caller (left) or callee (right), "
        "or every channel mixed (default: every channel as recorded)",
    )
    add_signer_option(p)
    p.add_argument(
        ACCEPT_UNSEALED,
        action="store_true",
        help="with --signer, also write a .crec.part whose header names a trusted recorder: "
        "never sealed, it carries no signature, so its origin stays unproven (a crash "
        "leaves such files; so can anyone holding a recipient's public key)",
    )
    p.add_argument(
        "--reason",
        type=reason_value,
        metavar="TEXT",
        help="why the recordings are opened, for the access log (a ticket, a request)",
    )
    add_config_option(p)  # names the access log ([audit] access_log)
    p.set_defaults(func=_decrypt)


# --- decrypt ------------------------------------------------------------------------


def _decrypt(args: argparse.Namespace) -> int:
    inputs = recordings(args.files)
    if args.output is None and any(item.root is not None for item in inputs):
        warn("decrypt", f"a folder needs -o DIR: {_MIRRORED}")
        return EXIT_USAGE
    keys = load_private_keys(args.key, args)
    trusted = load_signers(args.signer)
    _log_access(args, inputs, keys)
    progress = Progress("decrypting", len(inputs))
    codes = []
    for i, job in enumerate(_jobs(inputs, args.output), 1):
        progress.show(i)
        try:
            done = _decrypt_one(job, keys, args.force, trusted, args.channel, args.accept_unsealed)
        except (CallrecError, OSError) as exc:
            done = _Decrypted(error_code(exc, job.item.path), "", _problem(job.item.path, exc))
        progress.clear()
        done.tell()
        codes.append(done.code)
    return worst(codes)


_NOT_LOGGED = (
    "this access is not in any access log: give --config FILE (its [audit] access_log) "
    "or set CALLREC_ACCESS_LOG"
)


def _log_access(args: argparse.Namespace, inputs: list[Input], keys: list[PrivateKey]) -> None:
    """One access line naming every recording, before any is decrypted.

    Without a config (a DPO's own machine) ``$CALLREC_ACCESS_LOG`` may name
    the log. With neither, decrypting works as it always did (the key holder
    can read the files with any Tink anyway): a ``--reason`` given then gets
    a warning that it was recorded nowhere; without one it is said at -v.
    """
    from callrec.dpo.access import Action, Actor, open_access_log
    from callrec.recording import read_header

    log = open_access_log(config_file_if_any(args.config))
    if log is None:
        if args.reason is not None:
            warn("decrypt", f"--reason not recorded: {_NOT_LOGGED}")
        else:
            logging.getLogger(__name__).info("%s", _NOT_LOGGED)
        return
    ids = []
    for item in inputs:
        try:
            ids.append(read_header(item.path).recording_id)
        except (CallrecError, OSError):  # reported when it is decrypted
            continue
    log.record(Action.DECRYPT, Actor.current(keys), ids, args.reason)


@dataclass(frozen=True)
class _Decrypted:
    """One file's outcome: its exit code, the line for stdout, a warning for stderr."""

    code: int
    said: str = ""
    warning: str = ""

    def tell(self) -> None:
        if self.said:
            print(self.said)
        if self.warning:
            warn("decrypt", self.warning)


def _problem(src: Path, exc: BaseException) -> str:
    return f"{escape(str(src))}: {escape(str(exc))}"


def _report(command: str, src: Path, exc: BaseException) -> int:
    """One file's error as a line on stderr; its exit code."""
    warn(command, _problem(src, exc))
    return error_code(exc, src)


@dataclass(frozen=True)
class _Job:
    """Decrypt ``item`` into ``dst``, unless ``clash``, an earlier input, writes it already."""

    item: Input
    dst: Path
    clash: Path | None = None

    def mkdirs(self) -> None:
        """The folders that mirror the input's place below its folder, each 0700."""
        if self.item.root is not None:
            depth = len(self.item.path.relative_to(self.item.root).parts) - 1
            for folder in reversed(self.dst.parents[:depth]):
                private_dir(folder)


def _jobs(inputs: list[Input], output: str | None) -> list[_Job]:
    """Each input with its output; one whose output an earlier input writes is marked."""
    first: dict[Path, Path] = {}
    jobs = []
    for item, dst in zip(inputs, _outputs(inputs, output), strict=True):
        jobs.append(_Job(item, dst, first.get(dst)))
        first.setdefault(dst, item.path)
    return jobs


def _outputs(inputs: list[Input], output: str | None) -> list[Path]:
    if output is None:
        return [item.path.with_name(_wav_name(item.path)) for item in inputs]
    out = Path(output)
    single = len(inputs) == 1 and inputs[0].root is None
    if single and not out.is_dir() and not output.endswith("/"):
        return [out]
    private_dir(out)
    return [out / _mirrored(item) for item in inputs]


def _wav_name(src: Path) -> str:
    return f"{recording_stem(src)}.wav"


def _mirrored(item: Input) -> Path:
    """Where ``item``'s WAV goes below -o: its place below the folder it was found in."""
    if item.root is None:
        return Path(_wav_name(item.path))
    return item.path.parent.relative_to(item.root) / _wav_name(item.path)


def _decrypt_one(
    job: _Job,
    keys: list[PrivateKey],
    force: bool,
    trusted: Trusted,
    channel: str | None,
    accept_unsealed: bool = False,
) -> _Decrypted:
    from callrec.decode import render_file
    from callrec.recording import RecordingReader, is_sealed_name

    src, dst = job.item.path, job.dst
    if job.clash is not None:
        raise CliError(
            f"its output {escape(str(dst))} is {escape(str(job.clash))}'s: nothing written "
            "(decrypt it on its own with another -o)"
        )
    meta_path = dst.with_suffix(".json")
    if not force:
        for path in (dst, meta_path):
            if path.exists():
                raise CliError(f"refusing to overwrite {path} (use --force)")
    with RecordingReader(job.item.file(), keys) as reader:
        header = reader.header
        origin = check_origin(
            reader.origin, trusted, is_sealed_name(src), accept_unsealed=accept_unsealed
        )
        if origin.rejected:  # checked before anything is decrypted or written
            return _Decrypted(
                EXIT_INVALID, "", f"{escape(str(src))}: {escape(origin.rejected)}; nothing written"
            )
        job.mkdirs()
        pick = None if channel is None else ChannelPick(channel)
        decoded, frames_written = render_file(reader, dst, pick)
        seconds = frames_written / header.sample_rate
        record = {
            "file": src.name,
            **_header_dict(header),
            "written_channels": channel or "all",
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
    said = origin.label if trusted is not None else f"origin not checked: {origin.label}"
    line = f"{escape(str(src))} -> {escape(str(dst))} ({seconds:.2f} s, {reader.verdict}, {said})"
    if not code:
        return _Decrypted(code, line)
    cut = (
        f"{escape(str(src))}: {reader.verdict}: {escape(str(reader.error))}; "
        f"wrote the {seconds:.2f} s verified before it"
    )
    return _Decrypted(code, line, cut)


def _header_dict(header: Header) -> dict[str, Any]:
    from callrec.clock import iso_utc  # not at import: the clock module loads asyncio

    return {
        "version": header.version,
        "recording_id": header.recording_id,
        "codec": str(header.codec),
        "sample_rate": header.sample_rate,
        "channels": header.channels,
        "layout": describe(str(header.codec), header.channels),
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
        parsed, origin = origin_of(existing_file(path))
        info = {"file": str(path), **_header_dict(parsed.header)}
        code = 0 if origin.error is None else exit_code(judge(origin.error, sealed))
    else:
        with RecordingReader(existing_file(path), keys) as reader:
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
        export = export_tink(existing_file(path), keys)
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
