"""What a config re-read under a running ``callrec serve`` may change, and what not.

SIGHUP (``systemctl reload callrec``) reads the config file again. Most of
it applies to the next call: prompts, destinations, consent settings,
recipients and signing key, the failure policy, the log level, the metrics
address. Some keys name what the running process is built on: the ARI
connection and the Stasis app's name (Asterisk knows the app by it), the
media socket and the spool the open recordings use, the audit log whose
chain the running process extends, the FastAGI socket. Those keep their
running values until a restart; :func:`plan_reload` names each one that
changed, so the admin is told rather than left guessing.

Pure: the app loads the file and applies the plan (``ari_app/app.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from callrec.config import SECTIONS, Config


@dataclass(frozen=True, slots=True)
class RestartOnly:
    """A key, as the file spells it, and the fields of its section that hold it."""

    key: str
    section: str
    fields: tuple[str, ...]


RESTART_ONLY: tuple[RestartOnly, ...] = (
    RestartOnly("ari.url", "ari", ("url",)),
    RestartOnly("ari.user", "ari", ("user",)),
    RestartOnly("ari.password", "ari", ("password", "password_from_env")),
    RestartOnly("ari.app", "ari", ("app",)),
    RestartOnly("recording.spool", "recording", ("spool",)),
    RestartOnly("recording.media_host", "recording", ("media_host",)),
    RestartOnly("recording.media_port", "recording", ("media_port",)),
    RestartOnly("recording.fsync_interval", "recording", ("fsync_interval",)),
    RestartOnly("privacy.audit_log", "privacy", ("audit_log",)),
    RestartOnly("agi.listen", "agi", ("host", "port")),
    RestartOnly("agi.read_timeout", "agi", ("read_timeout",)),
    RestartOnly("control.socket", "control", ("socket",)),
)


@dataclass(frozen=True, slots=True)
class ReloadPlan:
    """The config to run from now on, and what differs from the running one."""

    config: Config
    # Sections whose values the running process takes over ("consent", ...).
    changed: tuple[str, ...]
    # Keys changed in the file that keep their running values ("ari.url", ...).
    needs_restart: tuple[str, ...]


def plan_reload(running: Config, loaded: Config) -> ReloadPlan:
    """``loaded`` with every restart-only key set back to its running value."""
    config = loaded
    needs_restart: list[str] = []
    for fixed in RESTART_ONLY:
        now, new = getattr(running, fixed.section), getattr(config, fixed.section)
        kept = _kept(now, new, fixed.fields)
        if kept:
            needs_restart.append(fixed.key)
            config = replace(config, **{fixed.section: replace(new, **kept)})
    changed = tuple(name for name in SECTIONS if getattr(running, name) != getattr(config, name))
    return ReloadPlan(config, changed, tuple(needs_restart))


def _kept(now: Any, new: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    """The running values of ``fields`` when the file changed any of them, else nothing."""
    if all(getattr(now, name) == getattr(new, name) for name in fields):
        return {}
    return {name: getattr(now, name) for name in fields}
