"""The one source of time.

Consent timeouts, fsync intervals and evidence timestamps read time through a
:class:`Clock`, so tests can drive a :class:`ManualClock` instead of sleeping
(aiortc ``clock.py``).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a monotonic clock."""
        ...

    def wall(self) -> float:
        """Seconds since the Unix epoch (UTC)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class SystemClock:
    """Real time."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class ManualClock:
    """Time that moves only when a test calls :meth:`advance`."""

    def __init__(self, start_wall: float = 1_795_910_400.0) -> None:
        self._mono = 0.0
        self._wall0 = start_wall
        self._waiters: list[tuple[float, asyncio.Future[None]]] = []

    def monotonic(self) -> float:
        return self._mono

    def wall(self) -> float:
        return self._wall0 + self._mono

    async def sleep(self, seconds: float) -> None:
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._mono + max(seconds, 0.0), fut))
        self._wake()
        await fut

    def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wake()

    def _wake(self) -> None:
        keep = []
        for due, fut in self._waiters:
            if due <= self._mono:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((due, fut))
        self._waiters = keep


SYSTEM_CLOCK = SystemClock()

# 9999-12-31T23:59:59.999Z: the last instant an ISO 8601 date can show, and so
# the latest time a file may claim (a header's created_at, a pause).
LATEST_WALL = 253_402_300_799.999


def iso_utc(ts: float) -> str:
    """``ts`` (Unix seconds) as ISO 8601 UTC with milliseconds.

    A time no date can show (after LATEST_WALL, NaN) is a ValueError naming
    it, never datetime's OverflowError: times come from files and logs.
    """
    try:
        return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"time {ts!r} is not a date between the years 1 and 9999") from None
