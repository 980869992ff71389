"""What callrec ships inside its package: the default prompts and the config templates.

``callrec prompts install-defaults`` and ``callrec config template`` read
them through :mod:`importlib.resources`, so an installed wheel finds them
just as a source checkout does, whatever the current folder.

In the source tree ``config`` and ``sounds/<lang>`` here are symbolic links
to the repository's ``config/`` and ``sounds/<lang>/``: those stay the one
copy anyone edits (``sounds/generate.py`` writes there), and building the
wheel copies the files they point to (``setup.cfg`` package data). Default
prompts in a new language need a link here too.

Importing this package costs nothing; :mod:`importlib.resources` loads when
a function is called.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callrec.errors import CallrecError
from callrec.prompts.names import FORMATS, LANGUAGE, PROMPT_FOLDER, is_name

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

TEMPLATE_FOLDER = "config"
SOUNDS_FOLDER = "sounds"


@dataclass(frozen=True)
class DefaultPrompt:
    """One shipped prompt in one language: its file in every format Asterisk plays."""

    lang: str
    name: str  # "disclosure": played as sound:callrec/disclosure
    files: Mapping[str, Traversable]  # extension (FORMATS) -> the shipped file

    @property
    def sound(self) -> str:
        return f"{PROMPT_FOLDER}/{self.name}"


class IncompletePackage(CallrecError):
    """A shipped file is missing: the package was built or installed without it."""


def _folder(*parts: str) -> Traversable:
    """A shipped folder; IncompletePackage, naming it, if the install lacks it."""
    from importlib.resources import files

    folder = files(__name__).joinpath(*parts)
    if not folder.is_dir():
        raise IncompletePackage(
            f"the installed callrec package has no {'/'.join(parts)}/ folder: reinstall it"
        )
    return folder


def template_names() -> list[str]:
    """The shipped templates: ``callrec.toml``, the systemd unit, the Asterisk snippets."""
    return sorted(f.name for f in _folder(TEMPLATE_FOLDER).iterdir() if f.is_file())


def template(name: str) -> str | None:
    """The text of template ``name`` (one of :func:`template_names`), None if there is none."""
    if name not in template_names():
        return None
    return _folder(TEMPLATE_FOLDER).joinpath(name).read_text(encoding="utf-8")


def prompt_languages() -> list[str]:
    """The languages the default prompts are recorded in, sorted."""
    folder = _folder(SOUNDS_FOLDER)
    return sorted(f.name for f in folder.iterdir() if LANGUAGE.fullmatch(f.name) and f.is_dir())


def default_prompts(languages: Iterable[str]) -> list[DefaultPrompt]:
    """Every shipped prompt in each of ``languages``, by language and name.

    A prompt lacking a format is an error, not a smaller list: installing
    it would give a sound that callers on some codecs cannot hear.
    """
    found = []
    for lang in languages:
        folder = _folder(SOUNDS_FOLDER, lang, PROMPT_FOLDER)
        by_name: dict[str, dict[str, Traversable]] = {}
        for f in folder.iterdir():
            stem, _, ext = f.name.partition(".")
            if ext in FORMATS and is_name(stem) and f.is_file():
                by_name.setdefault(stem, {})[ext] = f
        for name, files in sorted(by_name.items()):
            missing = [f".{ext}" for ext in FORMATS if ext not in files]
            if missing:
                raise IncompletePackage(
                    f"the installed callrec package lacks {lang}/{PROMPT_FOLDER}/{name}"
                    f"{', '.join(missing)}: reinstall it"
                )
            found.append(DefaultPrompt(lang, name, {ext: files[ext] for ext in FORMATS}))
    return found
