"""Prompt files in the Asterisk sounds tree: encode, install atomically, list, hash."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from callrec.audio import encode_pcm16le
from callrec.evidence import prompt_sha256
from callrec.media.codecs import PCM16_SUBTYPE, RAW_FORMATS
from callrec.media.g711 import alaw_encode, ulaw_encode
from callrec.prompts.convert import RATE_NARROW, PromptAudio
from callrec.prompts.names import (
    CANONICAL_FORMAT,
    FILE_MODE,
    FORMATS,
    PROMPT_FOLDER,
    PromptError,
    check_language,
    is_name,
    sound_of,
    sound_path,
)
from callrec.spool import os_reason, write_file_atomic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstalledPrompt:
    """Where a prompt went and how to refer to it."""

    sound: str
    lang: str
    paths: dict[str, Path]
    sha256: str

    @property
    def uri(self) -> str:
        return f"sound:{self.sound}"


@dataclass(frozen=True)
class PromptEntry:
    """One prompt found in a sounds tree (``prompts list``)."""

    lang: str
    sound: str
    formats: tuple[str, ...]
    seconds: float | None
    sha256: str | None


def wav_bytes(samples: PromptAudio) -> bytes:
    """The canonical 8 kHz 16-bit mono WAV: a 44-byte header, no timestamps."""
    buf = io.BytesIO()
    sf.write(buf, samples.narrow, RATE_NARROW, format="WAV", subtype=PCM16_SUBTYPE)
    return buf.getvalue()


def encode_all(audio: PromptAudio) -> dict[str, bytes]:
    """File contents by extension, for every format in ``FORMATS``."""
    return {
        "wav": wav_bytes(audio),
        "sln16": encode_pcm16le(audio.wide),
        "ulaw": ulaw_encode(audio.narrow),
        "alaw": alaw_encode(audio.narrow),
    }


def install(audio: PromptAudio, sounds_dir: Path, lang: str, name: str) -> InstalledPrompt:
    """Write every format of prompt ``name`` into ``<sounds_dir>/<lang>/callrec/``.

    Each file is replaced atomically (temporary file, fsync, rename); the WAV
    goes last, so a complete WAV means the other formats are already in place.
    """
    sound = sound_of(name)
    contents = encode_all(audio)
    paths = {ext: sound_path(sounds_dir, lang, sound, ext) for ext in FORMATS}
    folder = paths[CANONICAL_FORMAT].parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for ext in sorted(FORMATS, key=lambda e: e == CANONICAL_FORMAT):
            write_file_atomic(paths[ext], contents[ext], FILE_MODE, replace=True)
    except OSError as exc:
        raise PromptError(f"cannot install into {folder}: {os_reason(exc)}") from exc
    # Hash the file as installed, exactly as the consent evidence will.
    digest = prompt_sha256(paths[CANONICAL_FORMAT])
    logger.info("installed %s (%s) into %s, sha256 %s", sound, lang, folder, digest)
    return InstalledPrompt(sound, lang, paths, digest)


def list_prompts(sounds_dir: Path) -> list[PromptEntry]:
    """Every callrec prompt under ``<sounds_dir>/<lang>/callrec/``, by language and name."""
    if not sounds_dir.exists():
        raise PromptError(f"sounds folder {sounds_dir} does not exist")
    if not sounds_dir.is_dir():
        raise PromptError(f"sounds folder {sounds_dir} is not a folder")
    entries = []
    for lang_dir in sorted(p for p in sounds_dir.iterdir() if (p / PROMPT_FOLDER).is_dir()):
        lang = lang_dir.name
        found: dict[str, list[str]] = {}
        for file in sorted((lang_dir / PROMPT_FOLDER).iterdir()):
            stem, _, ext = file.name.partition(".")
            if ext in FORMATS and is_name(stem) and file.is_file():
                found.setdefault(stem, []).append(ext)
        entries += [_entry(sounds_dir, lang, stem, exts) for stem, exts in sorted(found.items())]
    return entries


def _entry(sounds_dir: Path, lang: str, stem: str, exts: list[str]) -> PromptEntry:
    sound = f"{PROMPT_FOLDER}/{stem}"
    formats = tuple(ext for ext in FORMATS if ext in exts)
    wav = sound_path(sounds_dir, check_language(lang), sound)
    if CANONICAL_FORMAT not in formats:
        return PromptEntry(lang, sound, formats, _raw_seconds(sounds_dir, lang, sound), None)
    try:
        seconds: float | None = float(sf.info(str(wav)).duration)
    except (sf.LibsndfileError, RuntimeError):
        seconds = None
    return PromptEntry(lang, sound, formats, seconds, prompt_sha256(wav))


def _raw_seconds(sounds_dir: Path, lang: str, sound: str) -> float | None:
    """Duration from a raw file's size when there is no WAV to ask."""
    for ext in ("sln16", "ulaw", "alaw"):
        path = sound_path(sounds_dir, lang, sound, ext)
        if path.is_file():
            raw = RAW_FORMATS[f".{ext}"]
            return path.stat().st_size / (raw.sample_rate * raw.codec.sample_width)
    return None
