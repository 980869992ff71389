"""serve's catalogue writer: calls never wait for the catalogue, and no entry is lost.

The catalogue is made unreachable for real: its SQLite folder is a file, so
opening it fails as a full or read-only disk would, until the test makes
the folder.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from callrec.catalog import Catalog
from callrec.catalog.service import CatalogWriter
from tests.callrec.catalog.support import Recorder


def _until(probe: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


class Down:
    """A catalogue URL that cannot be opened until :meth:`come_back`."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "catalogue"
        self.folder.write_text("a file where the catalogue's folder should be")
        self.url = f"sqlite://{self.folder / 'catalog.sqlite3'}"

    def come_back(self) -> None:
        self.folder.unlink()
        self.folder.mkdir()

    def calls(self) -> list[str]:
        return self.calls_at(self.url)

    @staticmethod
    def calls_at(url: str) -> list[str]:
        """The call ids the catalogue at ``url`` lists, in order."""
        with Catalog.open(url) as catalog:
            return [e.call.call_id for e in catalog.list() if e.call]


@pytest.fixture
def writer_for(recorder: Recorder) -> Iterator[Callable[..., CatalogWriter]]:
    made: list[CatalogWriter] = []

    def make(url: str, **options: int) -> CatalogWriter:
        writer = CatalogWriter(
            lambda: Catalog.open(url, recorder_id=recorder.recorder_id),
            recorder.audit_path, recorder.spool.root, retry_first=0.02, retry_max=0.05,
            **options,
        )  # fmt: skip
        recorder.audit.listeners.append(writer.submit)
        writer.start()
        made.append(writer)
        return writer

    yield make
    for writer in made:
        writer.stop(5.0)


def test_calls_go_on_while_the_catalogue_is_down_and_are_entered_when_it_is_back(
    recorder: Recorder,
    writer_for: Callable[..., CatalogWriter],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = Down(tmp_path)
    caplog.set_level(logging.INFO, "callrec.catalog")
    writer = writer_for(down.url)
    lines = [recorder.call() for _ in range(3)]  # each returns once its line is on disk
    _until(lambda: "catalogue unavailable" in caplog.text)
    assert writer.entered == 0
    down.come_back()
    _until(lambda: len(down.calls()) == 3)
    assert down.calls() == [line["channel"] for line in lines]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1  # one line per outage, not one per retry
    assert "calls go on and their entries wait" in warnings[0].getMessage()
    assert "catalogue reachable again" in caplog.text


def test_a_full_queue_drops_nothing_the_audit_log_holds(
    recorder: Recorder,
    writer_for: Callable[..., CatalogWriter],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    down = Down(tmp_path)
    writer = writer_for(down.url, capacity=2)
    lines = [recorder.call() for _ in range(6)]
    assert writer.queued == 2
    assert caplog.text.count("queue full (2 lines)") == 1
    down.come_back()
    _until(lambda: len(down.calls()) == 6)
    assert down.calls() == [line["channel"] for line in lines]


def test_a_start_enters_the_lines_the_last_run_did_not(
    recorder: Recorder, writer_for: Callable[..., CatalogWriter], tmp_path: Path
) -> None:
    url = f"sqlite://{tmp_path / 'catalog.sqlite3'}"
    listed = Down.calls_at
    first = writer_for(url)
    recorder.call()
    recorder.call()
    # The start's catch-up may meet a line the queue brings too: entered once.
    _until(lambda: len(listed(url)) == 2)
    assert first.stop()
    recorder.audit.listeners.clear()
    missed = [recorder.call(), recorder.call()]  # written while no writer ran (a crash)
    writer_for(url)
    _until(lambda: len(listed(url)) == 4)
    assert listed(url)[2:] == [line["channel"] for line in missed]


def test_a_line_the_catalogue_refuses_is_logged_and_the_next_ones_are_entered(
    recorder: Recorder,
    writer_for: Callable[..., CatalogWriter],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"sqlite://{tmp_path / 'catalog.sqlite3'}"
    clash = recorder.call()
    with Catalog.open(url) as catalog:  # another recorder claims that recording first
        catalog.record_call(clash, recorder_id="pbx-other")
    writer = writer_for(url)
    after = recorder.call()
    _until(lambda: writer.entered >= 1)
    assert f"audit line {clash['id']} not entered" in caplog.text
    assert "is already catalogued for recorder 'pbx-other', not 'pbx1'" in caplog.text
    with Catalog.open(url) as catalog:
        assert catalog.get(after["channel"]) is not None
