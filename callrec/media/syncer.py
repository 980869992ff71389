"""Durable recordings without fsync on the event loop: one syncfs per interval.

Measured here (bench/bench_recorder.py, ext4): with each writer fsyncing
inline, 500 calls lost 10 % of their packets while the event loop waited for
the disk; and 1,000 per-file fsyncs take about 1 s of wall time and 90 ms of
CPU, against 25-50 ms and 5-18 ms for one syncfs(2) of the spool's file
system. So a thread makes one syncfs per file system per interval, and
per-file fsync only where syncfs is missing or reports an error (to find the
recording it concerns).
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Generic, TypeVar, cast

K = TypeVar("K", bound=Hashable)


def _load_syncfs() -> Callable[[int], int] | None:
    """Linux syncfs(2) through ctypes (which releases the GIL), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int]
    fn.restype = ctypes.c_int
    return cast(Callable[[int], int], fn)


_SYNCFS = _load_syncfs()


class FileSyncer(Generic[K]):
    """Makes open files durable from a thread, every ``interval`` seconds.

    Each file is registered under a key (the recorder uses its streams) and
    reached through its own read-only descriptor, so a writer closing its
    own descriptor races with nothing. ``report(key, error)`` is called from
    the thread when a file cannot be synced.
    """

    def __init__(self, interval: float, report: Callable[[K, OSError], None]) -> None:
        self._interval = interval
        self._report = report
        self._fds: dict[K, tuple[int, int]] = {}  # key -> (fd, st_dev)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        # Called (from the thread) with the seconds each file system's sync took.
        self.on_synced: Callable[[float], None] | None = None
        self._thread = threading.Thread(target=self._run, name="callrec-fsync", daemon=True)
        self._thread.start()

    def add(self, key: K, path: Path) -> None:
        """Sync ``path`` from now on (replacing what ``key`` named); raises OSError."""
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        entry = (fd, os.fstat(fd).st_dev)
        with self._lock:
            old = self._fds.pop(key, None)
            self._fds[key] = entry
        if old is not None:
            os.close(old[0])

    def remove(self, key: K) -> None:
        """Stop syncing ``key``'s file (no error if it was never added)."""
        with self._lock:
            entry = self._fds.pop(key, None)
        if entry is not None:
            os.close(entry[0])

    def sync_all(self) -> None:
        with self._lock:
            items = list(self._fds.items())
        by_dev: dict[int, list[tuple[K, int]]] = {}
        for key, (fd, dev) in items:
            by_dev.setdefault(dev, []).append((key, fd))
        for group in by_dev.values():
            began = time.monotonic()
            if _SYNCFS is None or _SYNCFS(group[0][1]) != 0:
                self._fsync_each(group)
            if self.on_synced is not None:
                self.on_synced(time.monotonic() - began)

    def _fsync_each(self, group: list[tuple[K, int]]) -> None:
        for key, fd in group:
            try:
                os.fsync(fd)
            except OSError as exc:
                with self._lock:
                    current = self._fds.get(key, (-1, 0))[0] == fd
                if current:  # else the file was removed meanwhile: not an error
                    self._report(key, exc)

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            self.sync_all()

    def stop(self) -> None:
        """End the thread and close every descriptor (blocks: run it off the event loop)."""
        self._stopping.set()
        self._thread.join()
        with self._lock:
            fds, self._fds = [fd for fd, _ in self._fds.values()], {}
        for fd in fds:
            os.close(fd)
