"""The config as the doctor reads it: every problem, and whatever still works.

``check-config`` stops at the first broken file; the doctor wants both: the
``config`` line lists every problem ``check-config`` would (the values of the
whole file, and the files the config names), while the other checks run on
the sections that did load. A typo in ``[consent]`` does not keep the admin
from learning that ARI answers.

The problems of the files the config names (``callrec.config_checks``, the
same checks ``check-config`` runs) are shown on the line of the check they
belong to (recipient keys on ``recipients``, ...); only those no line claims
stay on the ``config`` line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from callrec.config import SECTIONS, Config, ConfigProblems, load_config
from callrec.config_checks import Reader, check_files
from callrec.doctor.result import CheckName, CheckResult
from callrec.errors import ConfigError

# Which check shows a file problem, by the start of its config key.
_CLAIMS: dict[CheckName, tuple[str, ...]] = {
    CheckName.SPOOL: ("recording.spool",),
    CheckName.RECIPIENTS: ("recording.recipients",),
    CheckName.SIGNING_KEY: ("recording.signing_key",),
    CheckName.PSEUDONYM_KEY: ("privacy.pseudonym_key",),
    CheckName.AUDIT_LOG: ("privacy.audit_log",),
    CheckName.PROMPTS: ("prompts.",),
}
_FILE_SECTIONS = ("recording", "privacy", "prompts")


@dataclass(frozen=True)
class DoctorConfig:
    """The config file's sections that loaded (defaults for the broken ones) and its problems."""

    path: Path
    config: Config
    broken: frozenset[str]
    value_problems: tuple[ConfigError, ...]
    file_problems: tuple[ConfigError, ...]

    def unusable(self, *sections: str) -> str | None:
        """Why a check that needs ``sections`` cannot run, or None when it can."""
        bad = [s for s in sections if s in self.broken]
        if not bad:
            return None
        names = ", ".join(f"[{s}]" for s in bad)
        return f"{names} of the config has problems (see the config line)"

    def problems_for(self, name: CheckName) -> list[ConfigError]:
        """The file problems ``check-config`` finds that the check ``name`` shows."""
        prefixes = _CLAIMS.get(name, ())
        return [p for p in self.file_problems if p.key.startswith(prefixes)]

    def file_failure(self, name: CheckName, what: object, hint: str) -> CheckResult | None:
        """FAIL listing ``check-config``'s problems of the check's file; None if it has none."""
        problems = tuple(
            f"{p.message} (hint: {p.hint})" if p.hint else p.message
            for p in self.problems_for(name)
        )
        if not problems:
            return None
        return CheckResult.fail(name, f"{what}: not usable", hint, details=problems)


def read_config(path: Path, env: Mapping[str, str] | None = None) -> DoctorConfig:
    """Load ``path`` section by section, keeping every problem ``check-config`` reports."""
    try:
        whole = load_config(path, env=env, check_files=False)
    except ConfigProblems as exc:
        values: tuple[ConfigError, ...] = tuple(exc.problems)
        config, broken = _by_section(path, env)
    else:
        values, config, broken = (), whole, frozenset()
    reader = Reader(config.path)
    check_files(reader, config, [s for s in _FILE_SECTIONS if s not in broken])
    return DoctorConfig(config.path, config, broken, values, tuple(reader.problems))


def _by_section(path: Path, env: Mapping[str, str] | None) -> tuple[Config, frozenset[str]]:
    parts: dict[str, Any] = {}
    broken = set()
    for section in SECTIONS:
        try:
            one = load_config(path, env=env, sections=(section,), check_files=False)
        except ConfigProblems:
            broken.add(section)
            continue
        parts[section] = getattr(one, section)
    return Config(path=Path(path), **parts), frozenset(broken)


def _line(problem: ConfigError) -> str:
    text = f"{problem.key}: {problem.message}"
    return f"{text} (hint: {problem.hint})" if problem.hint else text


def check_config(dc: DoctorConfig) -> CheckResult:
    """Every value valid, and no file problem that no other line shows."""
    claimed = {id(p) for name in _CLAIMS for p in dc.problems_for(name)}
    problems = [*dc.value_problems, *(p for p in dc.file_problems if id(p) not in claimed)]
    if not problems:
        return CheckResult.ok(CheckName.CONFIG, f"{dc.path}: every value is valid")
    return CheckResult.fail(
        CheckName.CONFIG,
        f"{dc.path}: {len(problems)} problem(s)",
        "fix each key as its line says; `callrec check-config FILE` lists the same",
        details=tuple(_line(p) for p in problems),
    )
