"""A PostgreSQL catalogue for tests: a fresh schema per test on ``$CALLREC_TEST_PG_URL``.

``.ci/run`` installs Debian's PostgreSQL, starts it and exports the URL.
Under ``CI=true`` a missing or unreachable server fails the test; locally
it skips (install ``postgresql`` and export the URL to run them).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest

PG_ENV = "CALLREC_TEST_PG_URL"


def pg_admin_url() -> str:
    """The server the tests may use, or fail (CI) / skip (locally) saying how to get one."""
    url = os.environ.get(PG_ENV, "")
    if not url:
        why = f"no PostgreSQL for the catalogue tests: {PG_ENV} is not set"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{why} (.ci/run starts one)")
        pytest.skip(why)
    return url


@contextmanager
def pg_schema() -> Iterator[str]:
    """A catalogue URL whose tables live in a schema of their own, dropped afterwards."""
    import psycopg

    url = pg_admin_url()
    schema = f"catalog_test_{secrets.token_hex(6)}"
    try:
        admin = psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL at {PG_ENV} unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {PG_ENV} unreachable")
    with admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            options = quote(f"-csearch_path={schema}")
            yield url + ("&" if "?" in url else "?") + f"options={options}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")
