"""``[recording] channels`` and its overrides per dialled number.

Read by :func:`callrec.config.load_config` inside ``[recording]`` (each
problem as ``file:key``), in a module of its own so the loader stays small:

    [recording]
    channels = "mixed"            # or "stereo"

    [recording.numbers."100"]     # calls to 100: caller left, callee right
    channels = "stereo"
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from callrec.config_checks import Reader, dotted, kind_of
from callrec.media.layout import MIXED, ChannelMode

KEYS = ("channels", "numbers")
_EXAMPLE = '{ channels = "stereo" }'


def read_channels(r: Reader, t: dict[str, Any]) -> tuple[ChannelMode, Mapping[str, ChannelMode]]:
    """The default mode and the modes of the numbers that have their own."""
    default: ChannelMode = r.choice(t, ("recording", "channels"), MIXED, ChannelMode)
    numbers: dict[str, ChannelMode] = {}
    for number, sub in r.table(t, "recording", "numbers").items():
        where = ("recording", "numbers", number)
        if not isinstance(sub, dict) or "channels" not in sub:
            shown = "a table without channels" if isinstance(sub, dict) else kind_of(sub)
            r.problem(dotted(*where), f"must be a table with channels, not {shown}", _EXAMPLE)
            continue
        r.unknown(sub, ("channels",), *where)
        numbers[number] = r.choice(sub, (*where, "channels"), default, ChannelMode)
    return default, MappingProxyType(numbers)
