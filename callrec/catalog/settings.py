"""The ``[catalog]`` section of the config: where the catalogue is, who this recorder is.

Read by :func:`callrec.config.load_config` like every section (each problem
as ``file:key``); kept beside the catalogue, which owns what a URL may be.
The database itself is only reached at run time (``callrec serve`` retries,
the CLI says why it cannot): a config is not wrong because a server is down.
"""

from __future__ import annotations

import re
from typing import Any

from callrec.catalog.db import Dialect, parse_url
from callrec.catalog.model import CatalogError
from callrec.config_checks import Reader, string_value
from callrec.config_model import DEFAULT_CATALOG_URL, CatalogConfig
from callrec.logutil import safe

KEYS = ("url", "recorder_id")
# A recorder id is shown in listings and used in RECORDER/CALL ids: no slash, no spaces.
_RECORDER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")


def read_catalog(r: Reader, t: dict[str, Any]) -> CatalogConfig:
    """``[catalog]``: a relative SQLite path is made absolute against the config's folder."""
    r.unknown(t, KEYS, "catalog")
    default = CatalogConfig()
    url = r.take(t, ("catalog", "url"), DEFAULT_CATALOG_URL, string_value)
    try:
        where = parse_url(url, r.base)
    except CatalogError as exc:
        r.problem("catalog.url", exc.message, "e.g. " + DEFAULT_CATALOG_URL)
        url = DEFAULT_CATALOG_URL
    else:
        if where.dialect is Dialect.SQLITE and where.path is not None:
            url = "sqlite://" + str(where.path)  # absolute now, whatever the working folder
    recorder_id = r.take(t, ("catalog", "recorder_id"), default.recorder_id, string_value)
    if "recorder_id" in t and not _RECORDER_ID.match(recorder_id):
        r.problem(
            "catalog.recorder_id",
            f"{safe(recorder_id, 40)!r} is not a recorder id",
            "letters, digits and . _ : - (at most 64), e.g. the host name",
        )
        recorder_id = default.recorder_id
    return CatalogConfig(url=url, recorder_id=recorder_id)
