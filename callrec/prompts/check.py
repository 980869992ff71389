"""Which prompts a config needs, and which of them are missing on disk.

``prompts check`` reads only the ``[prompts]`` table of the config, with the
same keys and defaults as :func:`callrec.config.load_config`, so it can run
where the rest of the config is not usable yet (no ARI password in the
environment, recipient keys not copied yet): prompts are often installed
before any of that.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from callrec.config import PROMPT_KINDS, PromptNames, PromptsConfig
from callrec.config_checks import dotted
from callrec.errors import ConfigError
from callrec.prompts.names import FORMATS, PromptError, check_language, check_sound, sound_path


@dataclass(frozen=True)
class MissingPrompt:
    """A referenced sound lacking some formats in one language."""

    lang: str
    sound: str
    formats: tuple[str, ...]
    used_by: tuple[str, ...]


def read_prompts_config(path: Path) -> PromptsConfig:
    """The ``[prompts]`` table of the config at ``path``; ConfigError on bad values."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise ConfigError(str(path), "(file)", f"cannot read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), "(syntax)", f"not valid TOML: {exc}") from exc
    table = _table(path, data, "prompts", "prompts")
    default = PromptsConfig()
    languages = tuple(_strings(path, table, "languages", default.languages))
    for lang in languages:
        _checked(path, "prompts.languages", lang, check_language)
    names = _names(path, table, PromptNames(), "prompts")
    sounds = Path(str(table.get("sounds_dir", default.sounds_dir))).expanduser()
    return PromptsConfig(
        sounds_dir=sounds if sounds.is_absolute() else path.parent / sounds,
        languages=languages,
        default_language=str(table.get("default_language", languages[0])),
        names=names,
        numbers=_numbers(path, table, names),
    )


def _numbers(path: Path, table: Mapping[str, Any], base: PromptNames) -> Mapping[str, PromptNames]:
    numbers = _table(path, table, "prompts.numbers", "numbers")
    return MappingProxyType(
        {
            number: _names(
                path,
                _table(path, numbers, dotted("prompts", "numbers", number), number),
                base,
                *("prompts", "numbers", number),
            )
            for number in numbers
        }
    )


def _table(path: Path, data: Mapping[str, Any], where: str, key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(str(path), where, "must be a table")
    return value


def _strings(
    path: Path, table: Mapping[str, Any], key: str, default: tuple[str, ...]
) -> list[str]:
    value = table.get(key, list(default))
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
        raise ConfigError(
            str(path), f"prompts.{key}", "must be a non-empty list of strings", 'e.g. ["de", "en"]'
        )
    return value


def _names(path: Path, table: Mapping[str, Any], base: PromptNames, *where: str) -> PromptNames:
    found = {kind: table.get(kind, base.name(kind)) for kind in PROMPT_KINDS}
    for kind, sound in found.items():
        _checked(path, dotted(*where, kind), sound, check_sound)
    return PromptNames(**found)


def _checked(path: Path, key: str, value: object, check: Callable[[str], str]) -> None:
    if not isinstance(value, str):
        raise ConfigError(str(path), key, "must be a string")
    try:
        check(value)
    except PromptError as exc:
        raise ConfigError(str(path), key, str(exc)) from exc


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
