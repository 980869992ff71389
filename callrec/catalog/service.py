"""``callrec serve`` entering each call into the catalogue as its audit line is written.

Writing the catalogue must never block or fail a call. The audit log calls
:meth:`CatalogWriter.submit` with each line once it is on disk (one hook
for both front ends, like the metrics); ``submit`` only puts the line on a
bounded queue, and one thread of its own enters the lines into the
catalogue. When the catalogue is down (a PostgreSQL server restarting, a
full disk), the lines wait in the queue and the thread retries, with one
WARNING when it goes down and one INFO when it is back. A line that finds
the queue full is not lost: the audit log stays the source of truth, and
the thread enters it from there once the catalogue is back, as it does at
every start with the lines a crash or a stop kept from it (those past the
last one entered: :meth:`~callrec.catalog.Catalog.audit_seq`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
from collections.abc import Callable, Mapping, Sized
from pathlib import Path
from typing import Any, Protocol

from callrec.audit import AuditLog
from callrec.catalog.db import redact
from callrec.catalog.model import CatalogError, CatalogUnavailable
from callrec.catalog.rebuild import enter_audit_log, refused
from callrec.catalog.store import Catalog
from callrec.config_model import CatalogConfig, Config
from callrec.logutil import safe

logger = logging.getLogger(__name__)

# Lines waiting while the catalogue is down: hours of calls on a busy PBX.
QUEUE_LINES = 10_000
# Seconds between tries while the catalogue is down (doubling up to the last).
RETRY_FIRST, RETRY_MAX = 1.0, 30.0
# At stop: how long calls still ending may take to write their lines, and how
# long the thread may take to enter what is queued (the rest waits for the next start).
CALLS_END_SECONDS = 10.0
DRAIN_SECONDS = 5.0

Opener = Callable[[], Catalog]


class CatalogWriter:
    """A bounded queue of audit lines and the one thread that enters them.

    ``opener`` opens the catalogue (it is called again after each outage);
    ``audit_log`` is where lines the queue could not hold are read back from.
    """

    def __init__(
        self,
        opener: Opener,
        audit_log: Path,
        spool: Path,
        *,
        capacity: int = QUEUE_LINES,
        retry_first: float = RETRY_FIRST,
        retry_max: float = RETRY_MAX,
    ) -> None:
        self._opener = opener
        self._audit_log = Path(audit_log)
        self._spool = Path(spool)
        self._queue: queue.Queue[Mapping[str, Any]] = queue.Queue(capacity)
        self._retry = (retry_first, retry_max)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._catalog: Catalog | None = None
        self._down = False
        self._catch_up = True  # at start: what the last run did not enter
        self._lock = threading.Lock()
        self._overflowed = False
        self.entered = 0  # lines entered (tests and logs read it)

    # --- the audit log's side (any thread, never blocks) -----------------------

    def submit(self, line: Mapping[str, Any]) -> None:
        """Queue one written audit line (an :class:`~callrec.audit.AuditLog` listener)."""
        try:
            self._queue.put_nowait(line)
        except queue.Full:
            with self._lock:
                first = not self._overflowed
                self._overflowed = self._catch_up = True
            if first:
                logger.warning(
                    "catalogue: queue full (%d lines); later lines will be entered from the "
                    "audit log once the catalogue is back",
                    self._queue.maxsize,
                )

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # --- life cycle ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="callrec-catalog", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = DRAIN_SECONDS) -> bool:
        """Enter what is queued (for at most ``timeout`` seconds), then end the thread.

        Returns whether everything queued was entered; what was not is
        entered from the audit log at the next start.
        """
        thread = self._thread
        if thread is None:
            return True
        self._stop.set()
        thread.join(timeout)
        done = not thread.is_alive() and self._queue.empty()
        if not done:
            logger.warning(
                "catalogue: %d audit lines not entered at stop; the next start enters them "
                "from the audit log",
                self._queue.qsize(),
            )
        return done

    # --- the thread -------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                if self._catch_up and not self._with_catalog(self._enter_missed):
                    break
                try:
                    line = self._queue.get(timeout=0.2)
                except queue.Empty:
                    if self._stop.is_set():
                        break
                    continue
                if not self._with_catalog(functools.partial(self._enter, line=line)):
                    break
        finally:
            self._close()

    def _with_catalog(self, work: Callable[[Catalog], None]) -> bool:
        """Run ``work`` until the catalogue takes it; False when stopped while it is down.

        Nothing ends the thread but a stop: a line the catalogue refuses is
        logged and left (the audit log keeps it), and so is a bug.
        """
        delay = self._retry[0]
        while True:
            try:
                catalog = self._open()
                work(catalog)
            except CatalogUnavailable as exc:
                self._went_down(exc)
            except Exception:
                logger.exception("catalogue: entering an audit line failed")
                return True
            else:
                self._came_back()
                return True
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, self._retry[1])

    def _open(self) -> Catalog:
        if self._catalog is None:
            self._catalog = self._opener()
            self._catalog.register(self._spool)
        return self._catalog

    def _enter(self, catalog: Catalog, *, line: Mapping[str, Any]) -> None:
        try:
            catalog.record_call(line)
        except CatalogUnavailable:
            raise
        except CatalogError as exc:  # this line can never be entered: say so, go on
            refused(line, exc)
            return
        self.entered += 1

    def _enter_missed(self, catalog: Catalog) -> None:
        with self._lock:
            self._catch_up = self._overflowed = False
        after = catalog.audit_seq()
        try:
            _read, entered, _damaged = enter_audit_log(catalog, self._audit_log, after)
        except OSError as exc:
            logger.warning("catalogue: cannot read the audit log to catch up: %s", exc)
            return
        if entered:
            logger.info("catalogue: %d audit lines entered from the audit log", entered)
        self.entered += entered

    def _went_down(self, exc: CatalogError) -> None:
        self._close()
        if not self._down:
            self._down = True
            logger.warning(
                "catalogue unavailable, calls go on and their entries wait (%d queued): %s",
                self._queue.qsize(),
                safe(str(exc), 300),
            )

    def _came_back(self) -> None:
        if self._down:
            self._down = False
            logger.info("catalogue reachable again; entering %d queued lines", self.queued)

    def _close(self) -> None:
        catalog, self._catalog = self._catalog, None
        if catalog is not None:
            try:
                catalog.close()
            except CatalogError as exc:
                logger.debug("catalogue: close failed: %s", exc)


class Shared(Protocol):
    @property
    def audit(self) -> AuditLog: ...


class Watched(Protocol):
    """What the service reads of the running app (``ari_app.app.App``)."""

    @property
    def sessions(self) -> Sized: ...

    @property
    def ctx(self) -> Shared | None: ...


class CatalogService:
    """The catalogue writer as one of ``callrec serve``'s extra services.

    Started after the app's own start-up (it needs the app's audit log);
    stopped with it, once the calls still ending have written their lines.
    A reload that changes ``[catalog]`` moves on to the catalogue it names.
    """

    def __init__(self, config: Config, app: Watched, *, opener: Opener | None = None) -> None:
        self.settings: CatalogConfig = config.catalog
        self._config = config
        self._app = app
        self._opener = opener
        self.writer: CatalogWriter | None = None
        self._audit: AuditLog | None = None

    def _open(self) -> Catalog:
        if self._opener is not None:
            return self._opener()
        return Catalog.from_config(self._config)

    async def start(self) -> None:
        shared = self._app.ctx
        if shared is None:
            raise RuntimeError("catalogue: the app's services are not running")
        self._audit = shared.audit
        self._attach()
        logger.info(
            "catalogue: entering calls as recorder %r into %s",
            self.settings.recorder_id,
            redact(self.settings.url),
        )

    def _attach(self) -> None:
        assert self._audit is not None
        writer = CatalogWriter(
            self._open, self._config.privacy.audit_log, self._config.recording.spool
        )
        writer.start()
        self._audit.listeners.append(writer.submit)
        self.writer = writer

    async def _detach(self) -> None:
        writer, self.writer = self.writer, None
        if writer is None:
            return
        if self._audit is not None and writer.submit in self._audit.listeners:
            self._audit.listeners.remove(writer.submit)
        await asyncio.to_thread(writer.stop)

    async def reload(self, config: Config) -> None:
        """Enter into the catalogue a reloaded ``[catalog]`` names, from the next line on."""
        if config.catalog == self.settings:
            return
        self.settings, self._config = config.catalog, config
        if self._audit is not None:
            await self._detach()
            self._attach()
            logger.info("catalogue: now %s as recorder %r", redact(self.settings.url),
                        self.settings.recorder_id)  # fmt: skip

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CALLS_END_SECONDS
        # The calls still ending write their last lines; the app offers no event for it.
        while len(self._app.sessions) and loop.time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await self._detach()
        self._audit = None
