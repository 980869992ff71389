"""The ``[audit]`` and ``[retention]`` sections of the config: the DPO tools' settings.

Read by :func:`callrec.config.load_config` like every section (each problem
as ``file:key``); kept beside the tools that use them, as ``[catalog]`` is
beside the catalogue.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from callrec.config_checks import Reader, days_value, dotted, path_text
from callrec.config_model import AuditConfig, RetentionConfig


def read_audit(r: Reader, t: dict[str, Any]) -> AuditConfig:
    """``[audit]``: ``access_log`` (unset: beside ``privacy.audit_log``)."""
    r.unknown(t, ("access_log",), "audit")
    raw = r.take(t, ("audit", "access_log"), "", path_text)
    return AuditConfig(access_log=r.path_value(raw) if raw else None)


def read_retention(r: Reader, t: dict[str, Any]) -> RetentionConfig:
    """``[retention]``: ``days``, and ``[retention.numbers."N"] days`` per dialled number."""
    r.unknown(t, ("days", "numbers"), "retention")
    days = r.take(t, ("retention", "days"), RetentionConfig.days, days_value)
    numbers: dict[str, int] = {}
    for number, sub in r.table(t, "retention", "numbers").items():
        where = ("retention", "numbers", number)
        if not isinstance(sub, dict) or "days" not in sub:
            r.problem(dotted(*where), "must be a table with days", "e.g. { days = 365 }")
            continue
        r.unknown(sub, ("days",), *where)
        numbers[number] = r.take(sub, (*where, "days"), days, days_value)
    return RetentionConfig(days=days, numbers=MappingProxyType(numbers))
