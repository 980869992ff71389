"""Every prompt the config names, in every language and format, and its hash.

Asterisk picks the format that fits the channel (``.wav``, ``.sln16``,
``.ulaw``, ``.alaw``), so one missing format fails only some calls: the
check wants all of them (``callrec.prompts.check``, as ``prompts check``).
The SHA-256 of each WAV is what the consent evidence will record for it, so
an admin can compare it with what was approved.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from callrec.doctor.loading import DoctorConfig
from callrec.doctor.result import CheckName, CheckResult
from callrec.errors import AudioFileError
from callrec.evidence import prompt_sha256
from callrec.prompts.check import missing_prompts, references
from callrec.prompts.names import CANONICAL_FORMAT, FORMATS, sound_path

_INSTALL_HINT = (
    "install each with `callrec prompts add NAME --lang LANG FILE --sounds-dir DIR` "
    "(it writes every format)"
)


def check_prompts(dc: DoctorConfig, seen: Mapping[str, frozenset[str]] | None) -> CheckResult:
    """Every prompt on disk in every format; ``seen``: what Asterisk finds (None: unknown)."""
    prompts = dc.config.prompts
    root = prompts.sounds_dir
    if not root.is_dir():
        return CheckResult.fail(
            CheckName.PROMPTS,
            f"{root} is not a folder",
            "prompts.sounds_dir must be the sounds folder Asterisk plays from "
            "(e.g. /var/lib/asterisk/sounds)",
        )
    sounds = list(references(prompts))
    gaps = {(m.lang, m.sound): m.formats for m in missing_prompts(prompts)}
    details, rows = [], []
    for lang in prompts.languages:
        for sound in sounds:
            row = _prompt(root, lang, sound, gaps.get((lang, sound), ()), seen)
            rows.append(row)
            details.append(_detail(row))
    data = {"sounds_dir": str(root), "prompts": rows}
    incomplete = sum(1 for row in rows if row["missing"])
    unseen = sum(1 for row in rows if not row["missing"] and row["asterisk_finds"] is False)
    if incomplete:
        return CheckResult.fail(
            CheckName.PROMPTS,
            f"{incomplete} of {len(rows)} prompt(s) incomplete in {root}",
            _INSTALL_HINT,
            details=tuple(details),
            data=data,
        )
    if unseen:
        return CheckResult.fail(
            CheckName.PROMPTS,
            f"{unseen} of {len(rows)} prompt(s) in {root} but not where Asterisk looks",
            "prompts.sounds_dir must be the sounds folder Asterisk plays from "
            "(astdatadir in asterisk.conf, plus /sounds)",
            details=tuple(details),
            data=data,
        )
    summary = (
        f"{len(sounds)} prompt(s) x {len(prompts.languages)} language(s), "
        f"all {len(FORMATS)} formats, in {root}"
    )
    if seen is None:
        details.append("not asked whether Asterisk finds them (ARI did not list its sounds)")
    else:
        summary += "; Asterisk finds each"
    return CheckResult.ok(CheckName.PROMPTS, summary, details=tuple(details), data=data)


def _prompt(
    root: Path,
    lang: str,
    sound: str,
    missing: tuple[str, ...],
    seen: Mapping[str, frozenset[str]] | None,
) -> dict[str, Any]:
    """One prompt in one language: its hash, missing formats, whether Asterisk finds it."""
    row: dict[str, Any] = {"language": lang, "sound": sound, "sha256": None}
    if CANONICAL_FORMAT not in missing:
        try:
            row["sha256"] = prompt_sha256(sound_path(root, lang, sound, CANONICAL_FORMAT))
        except AudioFileError as exc:
            missing, row["error"] = (*missing, CANONICAL_FORMAT), exc.message
    row["missing"] = list(missing)
    row["asterisk_finds"] = None if seen is None else lang in seen.get(sound, frozenset())
    return row


def _detail(row: dict[str, Any]) -> str:
    where = f"{row['language']} {row['sound']}"
    if row["missing"]:
        return f"{where}: missing or unreadable {', '.join(f'.{e}' for e in row['missing'])}"
    if row["asterisk_finds"] is False:
        return f"{where}: sha256 {row['sha256']}, but Asterisk does not find it"
    return f"{where}: sha256 {row['sha256']}"
