"""How loudly an events websocket that cannot connect is reported.

Asterisk restarting is routine: a few refused connections and 503s are
INFO. A PBX still unreachable after half a minute is a WARNING, after five
minutes an ERROR: no call reaches the recorder meanwhile (``Stasis()``
fails), and ``journalctl -p err`` is where an admin looks. Once loud, the
same news is repeated once a minute (or when the reason changes), not at
every 2 s retry; the rest go to DEBUG. The line when it connects again
says how long it was down, at WARNING when the outage was worth one.

:class:`Outage` decides, pure and clock-driven like the consent table;
:class:`OutageLog` writes the lines for the client's reconnect loop
(:meth:`callrec.ari.client.AriClient.events`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from callrec.clock import Clock

logger = logging.getLogger(__name__)

# What a lasting outage means, said once it is a WARNING or worse.
_NO_CALLS = "; meanwhile Stasis() fails and calls reach no recorder"


@dataclass(frozen=True, slots=True)
class Escalation:
    """Seconds of failing before each level, and how often a loud line repeats."""

    warning_after: float = 30.0
    error_after: float = 300.0
    repeat: float = 60.0

    def level(self, down_for: float) -> int:
        if down_for >= self.error_after:
            return logging.ERROR
        if down_for >= self.warning_after:
            return logging.WARNING
        return logging.INFO


@dataclass(frozen=True, slots=True)
class Failed:
    """What to log of one failed attempt."""

    level: int
    down_for: float


@dataclass(frozen=True, slots=True)
class Recovered:
    """What to log when a connection comes after failures."""

    level: int
    down_for: float
    failures: int


class Outage:
    """One stretch without a connection: from the drop, or from the first attempt
    that failed, to the next connection."""

    def __init__(self, clock: Clock, escalation: Escalation | None = None) -> None:
        self._clock = clock
        self._escalation = escalation or Escalation()
        self._attempt_at = clock.monotonic()
        self._since: float | None = None
        self._failures = 0
        self._loudest = logging.INFO
        self._said: tuple[int, str, float] | None = None  # level, reason, when

    def attempt(self) -> None:
        """An attempt starts (a timeout fails it only seconds later)."""
        self._attempt_at = self._clock.monotonic()

    def dropped(self) -> None:
        """The connection was lost: down from now."""
        self._since = self._clock.monotonic()

    def failed(self, reason: str) -> Failed:
        """The attempt failed for ``reason``; DEBUG when it would only repeat a loud line."""
        if self._since is None:
            self._since = self._attempt_at
        now = self._clock.monotonic()
        self._failures += 1
        down_for = now - self._since
        level = self._escalation.level(down_for)
        if level > logging.INFO and not self._news(level, reason, now):
            return Failed(logging.DEBUG, down_for)
        self._said = (level, reason, now)
        self._loudest = max(self._loudest, level)
        return Failed(level, down_for)

    def _news(self, level: int, reason: str, now: float) -> bool:
        if self._said is None:
            return True
        said_level, said_reason, said_at = self._said
        return (
            level != said_level
            or reason != said_reason
            or now - said_at >= self._escalation.repeat
        )

    def connected(self) -> Recovered | None:
        """A connection is up: what to say of the outage it ends; None when there was none."""
        since, failures, loudest = self._since, self._failures, self._loudest
        self._since, self._failures, self._loudest, self._said = None, 0, logging.INFO, None
        if since is None:
            return None
        down_for = self._clock.monotonic() - since
        level = logging.WARNING if loudest > logging.INFO else logging.INFO
        return Recovered(level, down_for, failures)


class OutageLog:
    """The log lines of one events websocket's outages (``base_url`` names it)."""

    def __init__(self, base_url: str, clock: Clock) -> None:
        self._url = base_url
        self._outage = Outage(clock)

    def attempt(self) -> None:
        self._outage.attempt()

    def dropped(self) -> None:
        self._outage.dropped()

    def failed(self, reason: str, attempt: int) -> None:
        failed = self._outage.failed(reason)
        logger.log(
            failed.level,
            "ARI events %s: %s (attempt %d, failing for %s), retrying%s",
            self._url,
            reason,
            attempt,
            duration(failed.down_for),
            _NO_CALLS if failed.level >= logging.WARNING else "",
        )

    def connected(self) -> None:
        recovered = self._outage.connected()
        if recovered is not None:
            logger.log(
                recovered.level,
                "ARI events %s: connected again after %s down (%d failed attempt(s))",
                self._url,
                duration(recovered.down_for),
                recovered.failures,
            )


def duration(seconds: float) -> str:
    """``4.2 s``, ``3 min 12 s``, ``2 h 5 min``: how long, for a log line."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
