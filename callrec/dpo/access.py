"""The access log: who decrypted, handed over, held, released or deleted which recordings, and why.

Accountability (GDPR Art. 5(2)) needs more than a policy: a record that
shows afterwards every time someone opened or removed a recording. Each
access is one JSON line in ``[audit] access_log`` (default: ``access.jsonl``
beside the audit log), written by :class:`callrec.audit.AuditLog`, so the
lines carry the audit log's hash chain and, with the recorder's signing key,
its signatures (:mod:`callrec.audit_chain`): ``callrec audit verify FILE``
checks the access log as it checks the audit log, and names the first line
that was edited, deleted, inserted or moved.

The line is written *before* the access happens, and a command that cannot
write it refuses to go on: no access without a trace. Keys of a line, besides
the chain's (``schema``, ``id``, ``time``, ``seq``, ``prev``, ``signer``,
``sig``):

================  ===========================================================
key               value
================  ===========================================================
``event``         ``access``
``action``        :class:`Action`: ``decrypt``, ``subject-export``,
                  ``subject-erase`` (an erasure ordered),
                  ``erasure-carried-out`` (one recorder deleted its part),
                  ``hold``, ``release``, ``retention-delete``
``user``          the OS user who ran the command; ``sudo_user``: who ran
                  ``sudo`` to become that user (null without sudo)
``host``          the machine it ran on
``key_ids``       fingerprints of the private keys the command used
                  (empty when it used none: hold, release, deletions)
``recordings``    ids of the recordings it touched
``reason``        why: the ``--reason`` given, or for ``retention-delete``
                  the rule (``retention.days = 90``)
``order``         ``subject-erase`` and ``erasure-carried-out``: the erasure
                  order's id in the catalogue
``as_of``         ``retention-delete`` by ``retention run --as-of``: the date
                  the rule was applied at (absent: now)
``claimed``       a deletion an earlier, interrupted run claimed and this one
                  finished: who claimed it (``by``) and when (``at``)
================  ===========================================================

The caller's number never appears; the recording ids are what link an
access to a call. ``--reason`` is free text: the docs ask a DPO to name a
ticket, not the caller, since an erasure cannot reach this log.
"""

from __future__ import annotations

import getpass
import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from callrec.audit import AuditError, AuditLog
from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.config_model import Config
from callrec.crypto.keys import PrivateKey
from callrec.crypto.signing import SigningKey
from callrec.errors import CallrecError

logger = logging.getLogger(__name__)

ACCESS_LOG_ENV = "CALLREC_ACCESS_LOG"


class Action(StrEnum):
    """What an access line records."""

    DECRYPT = "decrypt"
    SUBJECT_EXPORT = "subject-export"
    SUBJECT_ERASE = "subject-erase"
    ERASURE_CARRIED_OUT = "erasure-carried-out"
    HOLD = "hold"
    RELEASE = "release"
    RETENTION_DELETE = "retention-delete"


class AccessLogError(CallrecError):
    """The access line could not be written, so the access did not happen."""


@dataclass(frozen=True)
class Actor:
    """Who is acting: the OS user (and the one behind sudo), the host, the keys used."""

    user: str
    sudo_user: str | None
    host: str
    key_ids: tuple[str, ...] = ()

    @classmethod
    def current(cls, keys: Sequence[PrivateKey] = ()) -> Actor:
        """This process's user, holding ``keys``."""
        return cls(
            user=_os_user(),
            sudo_user=os.environ.get("SUDO_USER") or None,
            host=socket.gethostname(),
            key_ids=tuple(key.fingerprint for key in keys),
        )

    def fields(self) -> dict[str, Any]:
        return {
            "user": self.user,
            "sudo_user": self.sudo_user,
            "host": self.host,
            "key_ids": list(self.key_ids),
        }


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid with no name (a container): the number says who
        return f"uid {os.getuid()}"


class AccessLog:
    """Appends access lines to ``path``, chained and (with ``signer``) signed."""

    def __init__(
        self, path: Path, signer: SigningKey | None = None, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.path = Path(path)
        self._log = AuditLog(self.path, (), clock=clock, signer=signer)

    @property
    def signed(self) -> bool:
        return self._log.signer is not None

    @property
    def signer(self) -> SigningKey | None:
        """The recorder's key the lines are signed with (an erasure attests with it too)."""
        return self._log.signer

    def record(
        self,
        action: Action,
        actor: Actor,
        recordings: Sequence[str],
        reason: str | None,
        **extra: Any,
    ) -> dict[str, Any]:
        """Write one access line and return it; :class:`AccessLogError` when it cannot be."""
        line = {
            "event": "access",
            "action": str(action),
            **actor.fields(),
            "recordings": list(recordings),
            "reason": reason,
            **extra,
        }
        try:
            return self._log.append(line)
        except AuditError as exc:
            raise AccessLogError(
                f"cannot write the access log, so nothing was done: {exc}"
            ) from None


def access_log_for(config: Config, *, clock: Clock = SYSTEM_CLOCK) -> AccessLog:
    """The access log ``config`` names, signed with the recorder's key when it can be read.

    A DPO account may not be allowed to read the recorder's signing key
    (mode 0600, the service's user): the lines are then written unsigned,
    still chained, and a warning says so; ``audit verify --signer`` will
    name them.
    """
    signer: SigningKey | None = None
    try:
        signer = config.recording_signer()
    except CallrecError as exc:
        logger.warning("access lines written unsigned: the signing key cannot be used: %s", exc)
    return AccessLog(config.access_log, signer, clock=clock)


def access_log_from_env(env: dict[str, str] | None = None) -> AccessLog | None:
    """The unsigned access log ``$CALLREC_ACCESS_LOG`` names, or None."""
    path = (os.environ if env is None else env).get(ACCESS_LOG_ENV)
    return AccessLog(Path(path)) if path else None


def open_access_log(config: Path | None) -> AccessLog | None:
    """The access log for a command that may run without a config (``decrypt``).

    With a config file: the one it names. Without (a DPO's laptop): the file
    ``$CALLREC_ACCESS_LOG`` names, unsigned. Neither: None, and the caller
    says the access was not logged.
    """
    if config is None:
        return access_log_from_env()
    from callrec.config import load_config

    sections = ("recording", "privacy", "audit")
    return access_log_for(load_config(config, sections=sections, check_files=False))
