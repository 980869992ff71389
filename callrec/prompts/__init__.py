"""Announcement prompts: convert, install, list and check them.

Layout (Asterisk's sounds tree): ``<sounds_dir>/<lang>/callrec/<NAME>.<ext>``
for ``ext`` in ``wav`` (8 kHz 16-bit mono WAV), ``sln16`` (16 kHz signed
16-bit little-endian raw), ``ulaw`` and ``alaw`` (8 kHz raw G.711). Asterisk
plays ``sound:callrec/<NAME>`` and picks the format matching the channel.

The prompt hash: the SHA-256 of the bytes of the canonical 8 kHz WAV file,
``<sounds_dir>/<lang>/callrec/<NAME>.wav``, exactly what the consent evidence
(``callrec.evidence.prompt_sha256``) records for the prompt a caller heard.
The WAV is written deterministically (soundfile PCM_16: a plain 44-byte RIFF
header, no timestamps or tool names; samples rounded without dither), so the
same source and settings always give the same hash.
"""

from __future__ import annotations

from callrec.prompts.check import MissingPrompt, missing_prompts, read_prompts_config, references
from callrec.prompts.convert import (
    DEFAULT_MAX_SECONDS,
    DEFAULT_TARGET_LUFS,
    PromptAudio,
    Target,
    convert_file,
    convert_samples,
)
from callrec.prompts.names import (
    DEFAULT_SOUNDS_DIR,
    FORMATS,
    PromptError,
    check_language,
    check_name,
    sound_of,
    sound_path,
)
from callrec.prompts.store import (
    InstalledPrompt,
    PromptEntry,
    encode_all,
    install,
    list_prompts,
)

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "DEFAULT_SOUNDS_DIR",
    "DEFAULT_TARGET_LUFS",
    "FORMATS",
    "InstalledPrompt",
    "MissingPrompt",
    "PromptAudio",
    "PromptEntry",
    "PromptError",
    "Target",
    "check_language",
    "check_name",
    "convert_file",
    "convert_samples",
    "encode_all",
    "install",
    "list_prompts",
    "missing_prompts",
    "read_prompts_config",
    "references",
    "sound_of",
    "sound_path",
]
