"""Prompt names, languages and where their files live in the Asterisk sounds tree.

A *sound name* is what Asterisk plays (``sound:callrec/disclosure``): a path
below ``<sounds_dir>/<lang>/`` without extension. Prompts installed by
callrec are always ``callrec/<NAME>``; the config may name any sound.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from callrec.errors import CallrecError

# The one definition of a language code and a sound name; the config is
# checked with the same patterns (callrec.config_checks; use fullmatch).
LANGUAGE = re.compile(r"[a-z]{2,3}(?:_[A-Za-z]{2,4})?")  # en, de, pt_BR
# Sound names become paths under sounds_dir: no "..", no absolute names, no extension.
SOUND_PART = re.compile(r"[A-Za-z0-9_-]{1,64}")
SOUND = re.compile(rf"{SOUND_PART.pattern}(?:/{SOUND_PART.pattern})*")

DEFAULT_SOUNDS_DIR = Path("/var/lib/asterisk/sounds")
PROMPT_FOLDER = "callrec"
FILE_MODE = 0o644  # Asterisk runs as its own user and must read the prompts.

# Extension -> (sample rate, what Asterisk calls it). The 8 kHz WAV comes
# first: it is the canonical file whose SHA-256 identifies a prompt.
FORMATS: dict[str, tuple[int, str]] = {
    "wav": (8000, "8 kHz 16-bit mono WAV"),
    "sln16": (16000, "16 kHz signed 16-bit little-endian raw"),
    "ulaw": (8000, "8 kHz G.711 mu-law raw"),
    "alaw": (8000, "8 kHz G.711 A-law raw"),
}
CANONICAL_FORMAT = "wav"


class PromptError(CallrecError):
    """A prompt name, language or sound tree that cannot be used."""


@dataclass(frozen=True)
class PromptRef:
    """One prompt to play: ``sound:<name>`` in ``language``; ``path_wav`` is hashed.

    ``Config.prompt_for`` picks it (by dialled number and language); the
    consent evidence records the SHA-256 of ``path_wav``.
    """

    name: str
    language: str
    path_wav: Path

    @property
    def media(self) -> str:
        return f"sound:{self.name}"


def is_name(name: str) -> bool:
    """True for a safe prompt name: letters, digits, ``-``, ``_``."""
    return SOUND_PART.fullmatch(name) is not None


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe prompt name, else raise PromptError."""
    if not is_name(name):
        raise PromptError(
            f"bad prompt name {name!r}: use 1-64 letters, digits, '-' or '_' "
            "(no '/', no '..', no spaces)"
        )
    return name


def check_language(lang: str) -> str:
    """Return ``lang`` (``en``, ``de``, ``pt_BR``) if safe, else raise PromptError."""
    if not LANGUAGE.fullmatch(lang):
        raise PromptError(f"bad language {lang!r}: use a code like en, de or pt_BR")
    return lang


def check_sound(sound: str) -> str:
    """Return a sound name (``callrec/disclosure``) whose every part is safe."""
    if not SOUND.fullmatch(sound):
        raise PromptError(
            f"bad sound name {sound!r}: parts separated by '/', each of letters, "
            "digits, '-' or '_' (no '..', no leading '/', no extension)"
        )
    return sound


def sound_of(name: str) -> str:
    """The sound name of an installed prompt: ``callrec/<name>``."""
    return f"{PROMPT_FOLDER}/{check_name(name)}"


def sound_path(sounds_dir: Path, lang: str, sound: str, ext: str = CANONICAL_FORMAT) -> Path:
    """``<sounds_dir>/<lang>/<sound>.<ext>``: the file Asterisk plays."""
    return sounds_dir / check_language(lang) / f"{check_sound(sound)}.{ext}"
