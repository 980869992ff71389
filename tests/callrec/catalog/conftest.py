"""Every catalogue test runs against SQLite and a real PostgreSQL server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.callrec.catalog.pg import pg_schema
from tests.callrec.catalog.support import Recorder


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A new, empty catalogue of each kind."""
    if request.param == "sqlite":
        yield f"sqlite://{tmp_path / 'db' / 'catalog.sqlite3'}"
        return
    with pg_schema() as url:
        yield url


@pytest.fixture
def recorder(tmp_path: Path) -> Recorder:
    return Recorder(tmp_path / "pbx1")
