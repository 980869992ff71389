"""What every DPO command opens: the config, the catalogue, the access log, who is acting.

Shared by ``callrec subject``, ``callrec retention`` and ``callrec
recordings hold/release`` so each command writes its access line the same
way. Only the sections these commands read are loaded (no ARI password is
needed on a DPO's account) and the files the config points at are not
checked: a command says what is wrong with the one file it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from callrec.audit import read_audit
from callrec.catalog import Catalog, CatalogUnavailable
from callrec.config import load_config
from callrec.config_model import Config
from callrec.crypto.keys import PrivateKey
from callrec.dpo.access import AccessLog, Actor, access_log_for

logger = logging.getLogger(__name__)

SECTIONS = ("recording", "privacy", "catalog", "audit", "retention")


@dataclass
class Desk:
    """An open catalogue and access log, and who is acting, for one command."""

    config: Config
    _catalog: Catalog | None
    access: AccessLog
    actor: Actor

    @classmethod
    def open(
        cls, config_path: Path, keys: Sequence[PrivateKey] = (), *, need_catalog: bool = True
    ) -> Desk:
        """Load ``config_path`` and open what it names; raises a CallrecError naming a problem.

        ``need_catalog=False`` (an export, which the audit log alone can
        serve) goes on without a catalogue that cannot be reached, and says so.
        """
        config = load_config(config_path, sections=SECTIONS, check_files=False)
        access = access_log_for(config)
        try:
            catalog: Catalog | None = Catalog.from_config(config)
        except CatalogUnavailable as exc:
            if need_catalog:
                raise
            logger.warning("no catalogue (%s): the audit log alone is searched", exc)
            catalog = None
        return cls(config, catalog, access, Actor.current(keys))

    @property
    def catalog(self) -> Catalog:
        """The catalogue (opened with ``need_catalog``)."""
        assert self._catalog is not None, "opened without need_catalog"
        return self._catalog

    @property
    def maybe_catalog(self) -> Catalog | None:
        return self._catalog

    def audit_lines(self) -> Iterator[Mapping[str, Any]]:
        """This recorder's audit lines (none when it has no log yet)."""
        path = self.config.privacy.audit_log
        if path.exists():
            yield from read_audit(path)

    @property
    def by(self) -> str:
        """How a catalogue row names who acted: ``user@host``."""
        return f"{self.actor.user}@{self.actor.host}"

    @property
    def recorder_id(self) -> str:
        return self.config.catalog.recorder_id

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()

    def __enter__(self) -> Desk:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
