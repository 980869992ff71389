"""What ARI says of Asterisk itself: its loaded modules and the sounds it finds.

The typed answers of ``GET /asterisk/modules`` and ``GET /sounds`` that
``callrec doctor`` reads; the call-related resources (channels, bridges,
playbacks) are in :mod:`callrec.ari.events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Module:
    """A loaded Asterisk module (``GET /asterisk/modules``): ``chan_rtp.so``, ``Running``."""

    name: str
    description: str
    status: str
    support_level: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Module:
        return cls(
            name=str(data.get("name", "")),
            description=str(data.get("description", "")),
            status=str(data.get("status", "")),
            support_level=str(data.get("support_level", "")),
        )


@dataclass(frozen=True, slots=True)
class Sound:
    """A sound Asterisk finds in its sounds folder (``GET /sounds``), with its languages."""

    id: str
    formats: tuple[tuple[str, str], ...]  # (language, format): ("en", "slin16")

    @property
    def languages(self) -> frozenset[str]:
        return frozenset(lang for lang, _ in self.formats)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Sound:
        formats = data.get("formats")
        return cls(
            id=str(data.get("id", "")),
            formats=tuple(
                (str(f.get("language", "")), str(f.get("format", "")))
                for f in (formats if isinstance(formats, list) else [])
                if isinstance(f, dict)
            ),
        )
