"""``callrec prompts add | install-defaults | list | check``: announcements in the sounds tree.

Registering these parsers imports no audio library: the converter (numpy,
soxr, pyloudnorm, scipy) loads only when ``prompts add`` runs;
``install-defaults`` copies the shipped files as they are and needs none.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from callrec.cli.common import (
    CONFIG_DEFAULT,
    EXIT_ERROR,
    EXIT_OK,
    add_config_option,
    config_file,
    config_file_if_any,
    escape,
)
from callrec.prompts.defaults import (
    CEILING_DBFS,
    DEFAULT_MAX_SECONDS,
    DEFAULT_TARGET_LUFS,
    TRIM_THRESHOLD_DB,
)
from callrec.prompts.names import (
    CANONICAL_FORMAT,
    DEFAULT_SOUNDS_DIR,
    FILE_MODE,
    FORMATS,
    PromptError,
    check_language,
    check_name,
    sound_path,
)

if TYPE_CHECKING:
    from callrec.config import PromptsConfig
    from callrec.data import DefaultPrompt
    from callrec.prompts.convert import PromptAudio
    from callrec.prompts.store import InstalledPrompt, PromptEntry


def _finite(text: str) -> float:
    """A float argument that is a real number (not nan or inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, not {text!r}")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "prompts",
        description="Announcement prompts in Asterisk's sounds tree: add converts an audio "
        "file and installs it in every format, list shows what is installed, check finds "
        "what the config names but is missing.",
    )
    cmds = parser.add_subparsers(dest="prompts_command", metavar="ACTION")
    cmds.required = True
    _register_add(cmds)
    _register_install_defaults(cmds)
    listing = cmds.add_parser("list", help="prompts per language: duration, formats, hash")
    _sounds_args(listing)
    listing.set_defaults(func=cmd_list)
    check = cmds.add_parser("check", help="every prompt the config names exists everywhere")
    add_config_option(check)
    check.add_argument(
        "--sounds-dir", type=Path, metavar="DIR", help="instead of the config's sounds_dir"
    )
    check.set_defaults(func=cmd_check)


def _register_add(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    add = cmds.add_parser(
        "add",
        help="convert an audio file and install it as callrec/NAME",
        description=(
            "Convert any audio file (WAV, FLAC, OGG, ...; any rate; stereo) into "
            "8 kHz WAV, sln16, ulaw and alaw: mono mixdown, soxr resampling, leading and "
            f"trailing silence trimmed ({TRIM_THRESHOLD_DB:g} dB below the peak), loudness "
            f"normalised, peaks limited at {CEILING_DBFS:g} dBFS."
        ),
    )
    add.add_argument("name", type=_arg(check_name), metavar="NAME", help="e.g. disclosure")
    add.add_argument("file", type=Path, metavar="FILE", help="the source audio")
    add.add_argument("--lang", type=_arg(check_language), required=True, help="e.g. de, en")
    _sounds_args(add)
    level = add.add_mutually_exclusive_group()
    level.add_argument(
        "--target-lufs",
        type=_finite,
        default=DEFAULT_TARGET_LUFS,
        metavar="LUFS",
        help=f"EBU R128 integrated loudness (default {DEFAULT_TARGET_LUFS:g} LUFS)",
    )
    level.add_argument(
        "--rms-dbfs", type=_finite, metavar="DBFS", help="an RMS level target instead of LUFS"
    )
    add.add_argument(
        "--max-seconds",
        type=_finite,
        default=DEFAULT_MAX_SECONDS,
        metavar="SECONDS",
        help=f"longest prompt accepted, after trimming (default {DEFAULT_MAX_SECONDS:g})",
    )
    add.set_defaults(func=cmd_add)


def _register_install_defaults(cmds: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = cmds.add_parser(
        "install-defaults",
        help="install the default prompts shipped with callrec, in every format",
        description="Copy the default prompts that ship with callrec (disclosure, "
        "not-available, recording-unavailable; texts and SHA-256 in sounds/README.md) "
        f"into <sounds-dir>/<lang>/callrec/ as {', '.join(FORMATS)}, byte for byte. "
        "Safe to run again: a prompt already in place is left alone, and one that "
        "differs from the shipped file (your own recording) is kept unless --force.",
    )
    _sounds_args(p)
    p.add_argument(
        "--lang",
        type=_languages,
        metavar="LANGS",
        help="comma-separated, e.g. en,de (default: every language shipped)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="also replace prompts that differ from the shipped ones (your own recordings)",
    )
    p.set_defaults(func=cmd_install_defaults)


def _languages(text: str) -> list[str]:
    """``en,de`` as a list: each a language code callrec ships prompts in (argparse type)."""
    from callrec.data import prompt_languages
    from callrec.errors import CallrecError

    langs: list[str] = []
    try:
        shipped = prompt_languages()
        for lang in (part.strip() for part in text.split(",")):
            check_language(lang)
            if lang not in shipped:
                raise PromptError(
                    f"no default prompts in {lang!r} (shipped: {', '.join(shipped)}); "
                    "record your own with `callrec prompts add`"
                )
            if lang not in langs:
                langs.append(lang)
    except CallrecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return langs


def _sounds_args(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--sounds-dir", type=Path, metavar="DIR", help=f"default {DEFAULT_SOUNDS_DIR}"
    )
    where.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help=f"take prompts.sounds_dir from callrec.toml ({CONFIG_DEFAULT}, if it exists)",
    )


def _arg(check: Callable[[str], str]) -> Callable[[str], str]:
    """An argparse ``type`` that turns a PromptError into a usage error (exit 2)."""

    def convert(value: str) -> str:
        try:
            return check(value)
        except PromptError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def _sounds_dir(args: argparse.Namespace, config: PromptsConfig | None) -> Path:
    """--sounds-dir, else the config's, else the default."""
    if args.sounds_dir is not None:
        return Path(args.sounds_dir)
    if config is not None:
        return config.sounds_dir
    return DEFAULT_SOUNDS_DIR


def _config_path(args: argparse.Namespace) -> Path | None:
    """The config whose sounds_dir ``add`` and ``list`` use; none with --sounds-dir."""
    return None if args.sounds_dir is not None else config_file_if_any(args.config)


def _read_prompts(path: Path | None) -> PromptsConfig | None:
    from callrec.prompts.check import read_prompts_config

    return None if path is None else read_prompts_config(path)


def cmd_add(args: argparse.Namespace) -> int:
    from callrec.prompts.convert import Target, convert_file
    from callrec.prompts.store import install

    target = Target(lufs=args.target_lufs, rms_dbfs=args.rms_dbfs)
    if args.max_seconds <= 0:
        raise PromptError(f"--max-seconds must be positive, not {args.max_seconds:g}")
    audio = convert_file(args.file, target, args.max_seconds)
    path = _config_path(args)
    config = _read_prompts(path)
    if config is not None and args.lang not in config.languages:
        print(
            f"warning: {args.lang} is not in prompts.languages of {path}: "
            "no caller hears this prompt until it is added",
            file=sys.stderr,
        )
    installed = install(audio, _sounds_dir(args, config), args.lang, args.name)
    for warning in audio.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(_describe(installed, audio))
    return EXIT_OK


def _describe(installed: InstalledPrompt, audio: PromptAudio) -> str:
    wav = installed.paths["wav"]
    source = f"{audio.source_rate} Hz, {audio.source_channels} channel(s)"
    lead, tail = audio.trimmed_s
    return "\n".join(
        [
            f"installed {installed.sound} ({installed.lang}) into {wav.parent}/",
            "  files: " + " ".join(path.name for path in installed.paths.values()),
            f"  {audio.seconds:.2f} s from {source}; trimmed {lead:.2f} s + {tail:.2f} s "
            f"of silence; gain {audio.gain_db:+.1f} dB -> {audio.level:.1f} {audio.unit}, "
            f"peak {audio.peak_dbfs:.1f} dBFS",
            f"play with: {installed.uri}",
            f"sha256: {installed.sha256}",
            f"  (of {wav.name}: the prompt hash the consent evidence records)",
        ]
    )


class Placed(StrEnum):
    """What ``install-defaults`` did with one prompt in one language."""

    INSTALLED = "installed"  # written (all formats, or the ones missing)
    UNCHANGED = "unchanged"  # every format already there, as shipped
    KEPT = "kept"  # differs from the shipped one: the admin's own, left alone


@dataclass(frozen=True)
class DefaultPlaced:
    prompt: DefaultPrompt
    placed: Placed
    sha256: str  # of the .wav now in place ("-" when there is none)

    def line(self) -> str:
        text = f"{self.placed:<9}  {self.prompt.lang:<5} {self.prompt.sound:<32} {self.sha256}"
        if self.placed is Placed.KEPT:
            text += "  (not the shipped prompt: your own? --force replaces it)"
        return text


def cmd_install_defaults(args: argparse.Namespace) -> int:
    from callrec.data import default_prompts, prompt_languages

    path = _config_path(args)
    config = _read_prompts(path)
    root = _sounds_dir(args, config)
    langs = args.lang or prompt_languages()
    done = [_place_default(p, root, args.force) for p in default_prompts(langs)]
    for placed in done:
        print(placed.line())
    counts = Counter(d.placed for d in done)
    summary = ", ".join(f"{counts[state]} {state}" for state in Placed)
    print(f"{len(done)} default prompt(s) under {escape(str(root))}: {summary}")
    for lang in config.languages if config is not None else ():
        if lang not in langs:
            print(
                f"warning: no default prompts installed in {lang} (prompts.languages of "
                f"{escape(str(path))}): record them with `callrec prompts add`",
                file=sys.stderr,
            )
    return EXIT_OK


def _place_default(prompt: DefaultPrompt, root: Path, force: bool) -> DefaultPlaced:
    """Write what is missing or different of one shipped prompt; keep an admin's own.

    Files are compared byte for byte, so running it twice writes nothing the
    second time. The WAV goes last, as ``prompts add`` does: a complete WAV
    means the other formats are in place.
    """
    from callrec.spool import os_reason, write_file_atomic

    paths = {ext: sound_path(root, prompt.lang, prompt.sound, ext) for ext in FORMATS}
    shipped = {ext: prompt.files[ext].read_bytes() for ext in FORMATS}
    present = {ext: _read_if_there(paths[ext]) for ext in FORMATS}
    differ = [ext for ext in FORMATS if present[ext] != shipped[ext]]
    if not differ:
        return DefaultPlaced(prompt, Placed.UNCHANGED, _sha256(shipped[CANONICAL_FORMAT]))
    if not force and any(present[ext] is not None for ext in differ):
        return DefaultPlaced(prompt, Placed.KEPT, _sha256(present[CANONICAL_FORMAT]))
    folder = paths[CANONICAL_FORMAT].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for ext in sorted(differ, key=lambda e: e == CANONICAL_FORMAT):
            write_file_atomic(paths[ext], shipped[ext], FILE_MODE, replace=True)
    except OSError as exc:
        raise PromptError(f"cannot install into {folder}: {os_reason(exc)}") from exc
    return DefaultPlaced(prompt, Placed.INSTALLED, _sha256(shipped[CANONICAL_FORMAT]))


def _read_if_there(path: Path) -> bytes | None:
    from callrec.spool import os_reason

    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PromptError(f"cannot read {path}: {os_reason(exc)}") from exc


def _sha256(data: bytes | None) -> str:
    """The prompt hash of a WAV's bytes, as the consent evidence records it."""
    return "-" if data is None else hashlib.sha256(data).hexdigest()


def cmd_list(args: argparse.Namespace) -> int:
    from callrec.prompts.store import list_prompts

    entries = list_prompts(_sounds_dir(args, _read_prompts(_config_path(args))))
    if not entries:
        print("no callrec prompts found")
    lang = None
    for entry in entries:
        if entry.lang != lang:
            lang = entry.lang
            print(f"{lang}:")
        print(_list_line(entry))
    return EXIT_OK


def _list_line(entry: PromptEntry) -> str:
    seconds = "?" if entry.seconds is None else f"{entry.seconds:.2f} s"
    formats = ",".join(entry.formats)
    incomplete = "" if len(entry.formats) == len(FORMATS) else " (incomplete)"
    return f"  {entry.sound:<32} {seconds:>9}  {formats:<20} {entry.sha256 or '-'}{incomplete}"


def cmd_check(args: argparse.Namespace) -> int:
    from callrec.prompts.check import missing_prompts, read_prompts_config

    prompts = read_prompts_config(config_file(args.config))
    root = args.sounds_dir if args.sounds_dir is not None else prompts.sounds_dir
    missing = missing_prompts(prompts, root)
    for m in missing:
        print(
            f"missing: {m.lang}/{m.sound} .{', .'.join(m.formats)} "
            f"(used by {', '.join(m.used_by)})"
        )
    if missing:
        print(f"{len(missing)} prompt(s) incomplete under {root}", file=sys.stderr)
        return EXIT_ERROR
    print(
        f"ok: every prompt the config uses exists in {', '.join(prompts.languages)} "
        f"under {root}, as {', '.join(FORMATS)}"
    )
    return EXIT_OK
