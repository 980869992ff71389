"""What the app runs with: the config's keys and spool, read at start-up and
again at each reload (SIGHUP).

A reload builds a new :class:`~ari_app.context.CallContext` for the next
calls: the same ARI client, router, media recorder, spool and live records,
with the new config, keys and audit recipients. A call in progress keeps the
context it started with, so it finishes with the settings it started with.
What a running process cannot change is decided in
:mod:`callrec.config_reload`; a config with problems is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ari_app.context import CallContext
from callrec.audit import AuditLog
from callrec.config import MAX_CONFIG_BYTES, Config, ConfigProblems, load_config
from callrec.config_reload import ReloadPlan, plan_reload
from callrec.crypto.keys import PublicKey, load_pseudonym_key
from callrec.crypto.signing import SigningKey
from callrec.errors import CallrecError, ConfigError, KeyFileError
from callrec.logutil import escape, safe
from callrec.spool import Spool
from callrec.user_files import read_bounded

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordingKeys:
    """The keys a recording needs, and why recording cannot run (None: it can)."""

    pseudonym_key: bytes
    recipients: list[PublicKey]
    signer: SigningKey | None
    problem: str | None


def load_recording_keys(config: Config, spool: Spool) -> RecordingKeys:
    """Every key the config names, and the spool checked; problems are logged.

    An unreadable pseudonym key raises (no call can be handled without it);
    anything else only stops recording (the failure policy applies).
    """
    pseudonym_key = load_pseudonym_key(config.privacy.pseudonym_key)
    recipients, problem = _load_recipients(config)
    signer, unsigned = _load_signer(config)
    unusable = spool_problem(spool)  # checked (and created) whatever else is wrong
    return RecordingKeys(pseudonym_key, recipients, signer, problem or unsigned or unusable)


@dataclass(frozen=True)
class Reloaded:
    ctx: CallContext  # for the next calls
    plan: ReloadPlan
    config_file: dict[str, Any]


@dataclass(frozen=True)
class Refused:
    problems: list[ConfigError]
    config_file: dict[str, Any]


async def reread(running: CallContext) -> Reloaded | Refused:
    """Read the running config's file again: the next calls' context, or why not.

    Each problem of a refused config is logged at ERROR as ``file:key``; each
    key that needs a restart at WARNING.
    """
    path = running.config.path
    config_file = file_digest(path)
    try:
        loaded = await asyncio.to_thread(load_config, path)
    except ConfigProblems as exc:
        return _refused(path, exc.problems, config_file)
    plan = plan_reload(running.config, loaded)
    for key in plan.needs_restart:
        logger.warning("%s:%s changed: needs a restart (the running value stays)", path, key)
    try:
        keys = load_recording_keys(plan.config, running.spool)
    except (CallrecError, OSError) as exc:
        key = "privacy.pseudonym_key"
        return _refused(path, [ConfigError(str(path), key, safe(str(exc), 200))], config_file)
    audit = AuditLog(plan.config.privacy.audit_log, keys.recipients, signer=keys.signer)
    audit.listeners = running.audit.listeners  # the metrics count every call's line
    ctx = replace(
        running,
        config=plan.config,
        audit=audit,
        recipients=keys.recipients,
        pseudonym_key=keys.pseudonym_key,
        recording_problem=keys.problem,
    )
    return Reloaded(ctx, plan, config_file)


def _refused(path: Path, problems: list[ConfigError], config_file: dict[str, Any]) -> Refused:
    for problem in problems:
        # As check-config prints it (file:key as in the file), control characters escaped.
        logger.error("reload refused: %s", escape(str(problem), quotes=""))
    logger.error(
        "reload of %s refused (%d problem(s)): the running config stays", path, len(problems)
    )
    return Refused(problems, config_file)


def file_digest(path: Path) -> dict[str, Any]:
    """The config file as an audit line names it: path and SHA-256 (None: unreadable)."""
    try:
        digest: str | None = hashlib.sha256(read_bounded(path, MAX_CONFIG_BYTES)).hexdigest()
    except OSError:
        digest = None
    return {"path": str(path), "sha256": digest}


def spool_problem(spool: Spool) -> str | None:
    """Why recordings cannot go into ``spool`` (logged), or None when they can."""
    try:
        spool.ensure()
    except (CallrecError, OSError) as exc:
        logger.error("spool %s is unusable: %s", spool.root, safe(str(exc), 200))
        return f"spool unusable: {exc}"
    return None


def _load_recipients(config: Config) -> tuple[list[PublicKey], str | None]:
    """The recipients' keys, or why recording cannot run (the app still serves calls)."""
    try:
        keys = config.recipient_keys()
    except KeyFileError as exc:
        logger.error("recipient key %s unusable: %s", exc.path, safe(exc.message, 200))
        return [], f"recipient key {exc.path} unusable"
    except (CallrecError, OSError) as exc:
        logger.error("recipient key unusable: %s", safe(str(exc), 200))
        return [], "recipient key unusable"
    if not keys:
        return [], "no recipient public key configured"
    return keys, None


def _load_signer(config: Config) -> tuple[SigningKey | None, str | None]:
    """The recorder's signing key, or why recording cannot run as configured.

    A configured key that cannot be used stops recording (the failure
    policy applies) rather than leaving recordings silently unsigned.
    """
    try:
        return config.recording_signer(), None
    except KeyFileError as exc:
        logger.error("signing key %s unusable: %s", exc.path, safe(exc.message, 200))
        return None, f"signing key {exc.path} unusable"
