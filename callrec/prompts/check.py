"""Which prompts a config needs, and which of them are missing on disk.

``prompts check`` reads only the ``[prompts]`` table of the config, through
:func:`callrec.config.load_config` itself, so it can run
where the rest of the config is not usable yet (no ARI password in the
environment, recipient keys not copied yet): prompts are often installed
before any of that.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from callrec.config import PROMPT_KINDS, PromptsConfig, load_config
from callrec.config_checks import dotted
from callrec.prompts.names import FORMATS, sound_path


@dataclass(frozen=True)
class MissingPrompt:
    """A referenced sound lacking some formats in one language."""

    lang: str
    sound: str
    formats: tuple[str, ...]
    used_by: tuple[str, ...]


def read_prompts_config(path: Path) -> PromptsConfig:
    """The ``[prompts]`` table of the config at ``path``, read exactly as load_config does.

    Other sections and the files on disk are not checked (``prompts check``
    reports missing prompt files itself); ``ConfigProblems`` lists bad values.
    """
    return load_config(path, sections=("prompts",), check_files=False).prompts


def references(prompts: PromptsConfig) -> dict[str, tuple[str, ...]]:
    """Every sound the config refers to, with the config keys that name it."""
    used: dict[str, list[str]] = {}
    for kind in PROMPT_KINDS:
        used.setdefault(prompts.names.name(kind), []).append(dotted("prompts", kind))
    for number, names in prompts.numbers.items():
        # Only the names a number overrides; the rest are the defaults above.
        for kind in PROMPT_KINDS:
            if names.name(kind) == prompts.names.name(kind):
                continue
            used.setdefault(names.name(kind), []).append(
                dotted("prompts", "numbers", number, kind)
            )
    return {sound: tuple(keys) for sound, keys in used.items()}


def missing_prompts(prompts: PromptsConfig, sounds_dir: Path | None = None) -> list[MissingPrompt]:
    """Referenced sounds lacking a format in a configured language (empty: all there)."""
    root = prompts.sounds_dir if sounds_dir is None else sounds_dir
    missing = []
    for lang in prompts.languages:
        for sound, used_by in references(prompts).items():
            absent = tuple(
                ext for ext in FORMATS if not sound_path(root, lang, sound, ext).is_file()
            )
            if absent:
                missing.append(MissingPrompt(lang, sound, absent, used_by))
    return missing
