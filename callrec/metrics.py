"""Prometheus metrics of ``callrec serve``: what an admin watches without reading logs.

``[metrics] listen`` (empty: off) serves them in Prometheus' text format at
``/metrics``. The server is an aiohttp application on the service's own
event loop, started and stopped with the app's other services: a stuck loop
shows as a failed scrape, never as fresh-looking numbers from a thread that
still runs. Each :class:`Metrics` has a registry of its own (the global one
would mix in whatever else the process imports, and tests run several apps).

Most counters come from the audit lines as they are written
(:meth:`Metrics.observe_audit`, a listener on :class:`~callrec.audit.AuditLog`):
one hook for both front ends, and the numbers an admin graphs are the ones an
auditor counts. A call's packet counters and gaps are therefore counted when
its recording is sealed. What describes the present (calls and recordings in
progress, the events websocket, room in the spool) is read at each scrape;
fsync times come from the spool syncer's thread. docs/OPERATIONS.md lists
every metric, with alert rules.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping, Sized
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from callrec.audit import AuditLog
from callrec.config_model import PROMPT_KINDS, Config, MetricsConfig
from callrec.consent import Decision
from callrec.logutil import safe
from callrec.media.recorder import MediaRecorder
from callrec.tap import RecordingTap

logger = logging.getLogger(__name__)

PATH = "/metrics"
# The audit line's "packets" counters (callrec/audit.py), one metric each:
# ``callrec_rtp_packets_<name>_total``, counted when the recording ends.
PACKET_COUNTERS = {
    "received": "RTP packets received for recordings.",
    "lost": "RTP packets that never came (written as gaps).",
    "duplicated": "RTP packets received twice (dropped).",
    "reordered": "RTP packets that came out of order (put back in order).",
    "foreign": "RTP packets from another host claiming a recording's port (dropped).",
    "late": "RTP packets that came after their gap was written (dropped).",
    "bad": "RTP packets unparseable or of the wrong type or size (dropped).",
}
# The decision label of a call that took none (its disclosure could not be played).
NO_DECISION = "none"
# Audit events that are a call's line; an AGI call's second line (``stage:
# recording``) carries its recording, not a second call.
_CALL_EVENTS = frozenset({"call", "failure"})
_RECORDING_STAGE = "recording"

# Sealing is the tap's REST clean-up (at most 3 x 0.5 s), a final segment, an
# fsync and a rename: milliseconds when all is well, seconds when the PBX is slow.
SEAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# One syncfs of the spool: about 0.3 ms for one file, 25-50 ms for 1,000
# (docs/DESIGN.md 9); past a second the recordings' durability lags.
FSYNC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Shared(Protocol):
    """What the metrics use of the app's shared services (ari_app.context.CallContext)."""

    @property
    def audit(self) -> AuditLog: ...

    @property
    def recorder(self) -> MediaRecorder: ...

    @property
    def taps(self) -> Iterable[RecordingTap]: ...


class Watched(Protocol):
    """What the metrics read of the running app (ari_app.app.App) at each scrape."""

    @property
    def sessions(self) -> Sized: ...

    @property
    def connected(self) -> asyncio.Event: ...

    @property
    def connections(self) -> int: ...

    @property
    def ctx(self) -> Shared | None: ...


class Metrics:
    """The registry and its instruments; counts what each audit line says."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.calls = Counter(
            "callrec_calls",
            "Calls by consent decision (none: not taken).",
            ["decision"],
            registry=r,
        )
        self.ends = Counter(
            "callrec_calls_ended", "Calls of the Stasis app by end reason.", ["reason"], registry=r
        )
        self.sealed = Counter(
            "callrec_recordings_sealed", "Recordings sealed into the spool.", registry=r
        )
        self.failed = Counter(
            "callrec_recordings_failed",
            "Calls whose recording could not run, broke or was not sealed (audit event failure).",
            registry=r,
        )
        self.packets = {
            name: Counter(f"callrec_rtp_packets_{name}", text, registry=r)
            for name, text in PACKET_COUNTERS.items()
        }
        self.gaps = Counter(
            "callrec_rtp_gap_seconds", "Audio lost in the network, in seconds.", registry=r
        )
        self.prompt_failures = Counter(
            "callrec_prompt_playbacks_failed",
            "Prompts that could not be played, by prompt (a disclosure: nobody consented).",
            ["prompt"],
            registry=r,
        )
        self.audit_lines = Counter(
            "callrec_audit_lines", "Audit lines written, by event.", ["event"], registry=r
        )
        self.seal_seconds = Histogram(
            "callrec_seal_duration_seconds",
            "From a recording's end to its file sealed.",
            buckets=SEAL_BUCKETS,
            registry=r,
        )
        self.fsync_seconds = Histogram(
            "callrec_fsync_duration_seconds",
            "One sync of the spool's open recordings.",
            buckets=FSYNC_BUCKETS,
            registry=r,
        )
        for decision in (*Decision, NO_DECISION):
            self.calls.labels(str(decision))  # at 0 from the start, so rate() sees the first
        for kind in PROMPT_KINDS:
            self.prompt_failures.labels(kind)

    def observe_audit(self, line: Mapping[str, Any]) -> None:
        """Count what one written audit line says (an :class:`AuditLog` listener)."""
        event = str(line.get("event"))
        self.audit_lines.labels(event).inc()
        if event in _CALL_EVENTS and line.get("stage") != _RECORDING_STAGE:
            self._count_call(line)
        if event == "failure":
            self.failed.inc()
        if line.get("sealed") is True:
            self.sealed.inc()
        packets = line.get("packets")
        if isinstance(packets, Mapping):
            for name, counter in self.packets.items():
                counter.inc(_count(packets.get(name)))
        durations = line.get("durations")
        if isinstance(durations, Mapping):
            self.gaps.inc(_count(durations.get("gaps")))
            seal = durations.get("seal")
            if isinstance(seal, int | float) and seal >= 0:
                self.seal_seconds.observe(seal)

    def _count_call(self, line: Mapping[str, Any]) -> None:
        self.calls.labels(str(line.get("decision") or NO_DECISION)).inc()
        if line.get("end") is not None:
            self.ends.labels(str(line["end"])).inc()
        evidence = line.get("evidence")
        if isinstance(evidence, Mapping) and evidence.get("prompt_failure"):
            self.prompt_failures.labels("disclosure").inc()
        announcement = line.get("announcement_failure")
        if isinstance(announcement, Mapping) and announcement.get("prompt") in PROMPT_KINDS:
            self.prompt_failures.labels(str(announcement["prompt"])).inc()

    def watch(self, app: Watched, spool: Path) -> None:
        """Read the app's present state and the spool's room at each scrape."""
        self.registry.register(_Present(app, spool))

    def text(self) -> bytes:
        """The exposition (Prometheus text format)."""
        return generate_latest(self.registry)


def _count(value: object) -> float:
    """A non-negative number from an audit line, else 0 (counters only go up)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0.0
    return max(0.0, float(value))


class _Present(Collector):
    """Gauges of now, read at scrape time: nothing to keep in step with the app."""

    def __init__(self, app: Watched, spool: Path) -> None:
        self._app = app
        self._spool = spool

    def collect(self) -> Iterable[Metric]:
        app = self._app
        yield GaugeMetricFamily(
            "callrec_calls_active", "Calls in the Stasis app now.", value=len(app.sessions)
        )
        taps = () if app.ctx is None else app.ctx.taps
        yield GaugeMetricFamily(
            "callrec_recordings_active",
            "Recordings running now (both front ends).",
            value=sum(1 for tap in taps if tap.recording),
        )
        yield GaugeMetricFamily(
            "callrec_ari_websocket_up",
            "1 while the ARI events websocket is connected and serving calls.",
            value=int(app.connected.is_set()),
        )
        yield CounterMetricFamily(
            "callrec_ari_reconnects",
            "Events websocket connections after the first.",
            value=max(0, app.connections - 1),
        )
        yield from self._spool_room()

    def _spool_room(self) -> Iterable[Metric]:
        try:
            fs = os.statvfs(self._spool)
        except OSError as exc:  # no sample: an absent series is what alerts look for
            logger.debug("metrics: spool %s: %s", self._spool, safe(str(exc), 200))
            return
        yield GaugeMetricFamily(
            "callrec_spool_free_bytes",
            "Bytes free for callrec in the spool's file system.",
            value=fs.f_bavail * fs.f_frsize,
        )
        yield GaugeMetricFamily(
            "callrec_spool_size_bytes",
            "Size of the spool's file system in bytes.",
            value=fs.f_blocks * fs.f_frsize,
        )


class MetricsService:
    """The ``/metrics`` endpoint of ``callrec serve``, one of the app's extra services.

    Started after the app's own start-up (it needs the app's audit log and
    recorder) and stopped with it. A port that cannot be bound is logged at
    ERROR and the app goes on: calls matter more than their counts. It counts
    even while ``[metrics] listen`` is empty, so a reload (SIGHUP) that sets
    it serves the counts since the start.
    """

    def __init__(self, config: Config, app: Watched) -> None:
        self.settings: MetricsConfig = config.metrics
        self.metrics = Metrics()
        self._app = app
        self._spool = config.recording.spool
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._shared: Shared | None = None

    @property
    def url(self) -> str | None:
        """Where the metrics are served (the real port when 0 was asked), or None."""
        if self._site is None or self._runner is None or not self._runner.addresses:
            return None
        host, port = self._runner.addresses[0][:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}{PATH}"

    async def start(self) -> None:
        shared = self._app.ctx
        if shared is None:
            raise RuntimeError("metrics: the app's services are not running")
        self.metrics.watch(self._app, self._spool)
        shared.audit.listeners.append(self.metrics.observe_audit)
        if shared.recorder.syncer is not None:
            shared.recorder.syncer.on_synced = self.metrics.fsync_seconds.observe
        self._shared = shared
        if self.settings.enabled:
            await self._listen()

    async def reload(self, config: Config) -> None:
        """Serve at a reloaded ``[metrics] listen`` (or nowhere); the counts go on."""
        if config.metrics == self.settings:
            return
        await self._close()
        self.settings = config.metrics
        if self.settings.enabled:
            await self._listen()
        else:
            logger.info("metrics no longer served ([metrics] listen is empty)")

    async def _listen(self) -> None:
        app = web.Application()
        app.router.add_get(PATH, self._scrape)
        runner = web.AppRunner(app, access_log=None)  # a line per scrape would drown the log
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            where = f"{self.settings.host}:{self.settings.port}"
            logger.error(
                "metrics not served: cannot listen on %s: %s (hint: another process holds "
                "the port; change [metrics] listen)",
                where,
                safe(exc.strerror or str(exc), 200),
            )
            return
        self._runner, self._site = runner, site
        logger.info("metrics served at %s", self.url)

    async def _scrape(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.text())
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def stop(self) -> None:
        if self._shared is not None:
            listeners = self._shared.audit.listeners
            if self.metrics.observe_audit in listeners:
                listeners.remove(self.metrics.observe_audit)
            syncer = self._shared.recorder.syncer
            if syncer is not None:
                syncer.on_synced = None
            self._shared = None
        await self._close()

    async def _close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = self._site = None
