"""Where a callrec command finds its config when none is named: one definition for all.

``callrec serve``, ``check-config``, ``doctor``, the other ``callrec``
commands and the ``callrec-agi`` script all read ``$CALLREC_CONFIG``, else
``/etc/callrec/callrec.toml`` (the path the README's install and the systemd
unit use). This module imports nothing but the standard library, so
``callrec --help`` and the AGI script pay nothing for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

CONFIG_ENV = "CALLREC_CONFIG"
DEFAULT_CONFIG = Path("/etc/callrec/callrec.toml")


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$CALLREC_CONFIG`` if set and not empty, else :data:`DEFAULT_CONFIG`.

    An empty variable counts as unset: ``CALLREC_CONFIG=`` in a unit file or
    a shell must not turn into the current folder.
    """
    env = (os.environ if environ is None else environ).get(CONFIG_ENV)
    return Path(env) if env else DEFAULT_CONFIG
