"""What one doctor check found, and the checklist as a terminal or JSON shows it.

A check is a small function returning a :class:`CheckResult`: its
:class:`CheckName`, a :class:`Status`, one summary line, a hint for the
admin when it did not pass, and optional detail lines (one per prompt, per
key). Nothing here prints; the CLI prints :func:`render_text` or
:func:`render_json`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from callrec import logutil


class Status(StrEnum):
    """``ok`` and ``warn`` pass; ``FAIL`` and ``skip`` (could not be checked) do not."""

    OK = "ok"
    WARN = "warn"
    FAIL = "FAIL"
    SKIP = "skip"

    @property
    def passed(self) -> bool:
        return self in (Status.OK, Status.WARN)


class CheckName(StrEnum):
    """The checks, in the order the checklist shows them (stable ids for ``--json``)."""

    CONFIG = "config"
    ARI = "ari"
    ASTERISK = "asterisk"
    STASIS_APP = "stasis-app"
    CLOCK = "clock"
    PROMPTS = "prompts"
    MEDIA = "media"
    SPOOL = "spool"
    SPOOL_SPACE = "spool-space"
    LEFTOVERS = "leftovers"
    AUDIT_LOG = "audit-log"
    RECIPIENTS = "recipients"
    SIGNING_KEY = "signing-key"
    PSEUDONYM_KEY = "pseudonym-key"
    FASTAGI = "fastagi"


@dataclass(frozen=True)
class CheckResult:
    """One line of the checklist: what was found, and what to do when it is wrong."""

    name: CheckName
    status: Status
    summary: str
    hint: str = ""
    details: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def ok(cls, name: CheckName, summary: str, **kw: Any) -> CheckResult:
        return cls(name, Status.OK, summary, **kw)

    @classmethod
    def warn(cls, name: CheckName, summary: str, hint: str, **kw: Any) -> CheckResult:
        return cls(name, Status.WARN, summary, hint, **kw)

    @classmethod
    def fail(cls, name: CheckName, summary: str, hint: str, **kw: Any) -> CheckResult:
        return cls(name, Status.FAIL, summary, hint, **kw)

    @classmethod
    def skip(cls, name: CheckName, why: str) -> CheckResult:
        return cls(name, Status.SKIP, f"not checked: {why}")


def all_passed(results: Iterable[CheckResult]) -> bool:
    return all(r.status.passed for r in results)


def _escape(text: str) -> str:
    # Paths, Asterisk's messages and module names reach a terminal: no
    # escape sequence or newline from outside may.
    return logutil.escape(text, quotes="")


def render_text(results: Sequence[CheckResult]) -> list[str]:
    """The checklist for a terminal: status, name, summary; hint and details indented."""
    width = max((len(r.name) for r in results), default=0)
    lines = []
    for r in results:
        lines.append(f"{r.status:<5} {r.name:<{width}}  {_escape(r.summary)}")
        pad = " " * (6 + width + 2)
        lines.extend(f"{pad}{_escape(d)}" for d in r.details)
        if r.hint and r.status is not Status.OK:
            lines.append(f"{pad}hint: {_escape(r.hint)}")
    counts = {s: sum(1 for r in results if r.status is s) for s in Status}
    verdict = "all checks passed" if all_passed(results) else "NOT all checks passed"
    tally = ", ".join(f"{counts[s]} {s}" for s in Status if counts[s])
    lines.append(f"{verdict} ({tally})")
    return lines


def render_json(config: str, results: Sequence[CheckResult]) -> str:
    """One JSON object: the config, ``ok`` (every check passed) and every check."""
    checks = [
        {
            "name": str(r.name),
            "status": str(r.status),
            "summary": r.summary,
            "hint": r.hint,
            "details": list(r.details),
            **r.data,
        }
        for r in results
    ]
    body = {"config": config, "ok": all_passed(results), "checks": checks}
    return json.dumps(body, indent=2, ensure_ascii=False)
