"""The Stasis application's life cycle: startup -> main loop -> shutdown.

Startup loads the keys, adopts recordings a crash left in the spool, starts
the media recorder and the events websocket. The main loop turns each new
caller's StasisStart into a :class:`~ari_app.session.CallSession` and, after a
websocket drop, re-adopts the calls that are still there (or, after a PBX
restart, seals what was open). Shutdown (SIGTERM/SIGINT) stops taking calls,
seals every open recording and leaves the callers connected: their channels
stay in their bridges while no app is attached. SIGHUP reloads the config
(:meth:`App.reload`): the next calls use it, calls in progress keep the
context they started with. Signal handlers are restored on the way out
(uvicorn ``server.py``). Under systemd the app says READY=1, RELOADING=1,
STOPPING=1 and feeds the watchdog from this loop (``callrec/systemd.py``);
start, reload and stop each leave a ``service`` audit line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ari_app.context import AGENT_APP_ARG, TAP_CHANNEL_PREFIXES, CallContext
from ari_app.ending import End
from ari_app.recovery import CrashRecovery
from ari_app.session import CallSession
from ari_app.settings import Refused, file_digest, load_recording_keys, reread
from callrec import __version__
from callrec.ari.client import AriClient
from callrec.ari.events import Connected, Disconnected, Event, StasisStart
from callrec.ari.router import EventRouter
from callrec.audit import AuditLog, ReloadResult, ServiceAction, audit_record, service_record
from callrec.clock import SYSTEM_CLOCK, Clock, iso_utc
from callrec.config import Config
from callrec.errors import AriError, AriUnavailable, CallrecError
from callrec.live import LiveStore
from callrec.logutil import safe
from callrec.media.recorder import MediaRecorder
from callrec.spool import PART_SUFFIX, Spool
from callrec.systemd import READY, STOPPING, feed_watchdog, notify, reloading, watchdog_interval
from callrec.tap import SNOOP_APP_ARG

logger = logging.getLogger(__name__)

# SIGTERM must end the process within a few seconds (systemd waits 90 s, but
# an operator restarting the service should not): sealing is fast, a stuck
# REST call is not allowed to hold the exit up for longer than this.
SHUTDOWN_TIMEOUT = 3.0
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
RELOAD_SIGNAL = signal.SIGHUP
# Why the app stopped when no signal said so (the service line's reason).
STOP_REQUESTED = "requested"
STOP_ERROR = "error"


class Service(Protocol):
    """Something that runs beside the Stasis app (the FastAGI server)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


@runtime_checkable
class Reloadable(Protocol):
    """A service that takes a reloaded config (the FastAGI server, the metrics)."""

    async def reload(self, config: Config) -> None: ...


class LevelSource(StrEnum):
    """Who decides the log level: ``logging.level`` (at start and each reload),
    or whoever started the app (``-v``/``-q``, a test), whom a reload leaves alone."""

    CONFIG = "config"
    CALLER = "caller"


class App:
    """One Stasis application bound to one Asterisk.

    ``extra_services`` is the hook for further front ends sharing the process
    (the FastAGI server): each is started after the app's own start-up and
    stopped before its shutdown.
    """

    def __init__(
        self,
        config: Config,
        *,
        clock: Clock = SYSTEM_CLOCK,
        extra_services: Sequence[Service] = (),
        level_source: LevelSource = LevelSource.CALLER,
    ) -> None:
        self.config = config
        self.clock = clock
        self.level_source = level_source
        self.extra_services: list[Service] = list(extra_services)
        self.sessions: dict[str, CallSession] = {}
        self.ctx: CallContext | None = None
        self.connected = asyncio.Event()
        self.connections = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop = asyncio.Event()
        self._accepting = False
        self._events: asyncio.Task[None] | None = None
        self._startup_time: str | None = None
        # Whether the calls of a crashed predecessor have been looked for.
        self._recovered = False
        self._saved_signals: dict[int, Any] = {}
        self._ready = False  # READY=1 sent: reloads are announced to systemd
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[bool]] = set()
        self._stop_reason = STOP_REQUESTED
        self._stop_audited = False

    # --- life cycle ---------------------------------------------------------

    async def run(self) -> None:
        """Start, serve until a signal or :meth:`request_stop`, shut down."""
        self._apply_log_level(self.config)
        self._install_signal_handlers()
        watchdog = self._start_watchdog()
        try:
            try:
                await self.startup()
                await self.main_loop()
            except Exception:
                self._stop_reason = STOP_ERROR  # the stop line says so
                raise
            finally:
                await self.shutdown()
        finally:
            self._restore_signal_handlers()
            if watchdog is not None:
                watchdog.cancel()

    async def startup(self) -> None:
        """Keys, spool, leftovers, media recorder, extra services, then the events."""
        self.ctx = await self._build_context()
        if self.ctx.recording_problem is None:
            self._adopt_leftovers()
        for service in self.extra_services:
            await service.start()
        self._accepting = True
        self._audit_service(ServiceAction.START, version=__version__, pid=os.getpid())
        self._events = asyncio.create_task(self._consume_events())
        logger.info("callrec app %r started against %s", self.config.ari.app, self.config.ari.url)

    async def _build_context(self) -> CallContext:
        config, rec = self.config, self.config.recording
        # Everything that can refuse to start comes before any socket is opened.
        spool = Spool(rec.spool)
        keys = load_recording_keys(config, spool)
        live = _live_store(rec.spool)
        recorder = MediaRecorder(rec.media_host, rec.media_port, sync_interval=rec.fsync_interval)
        await recorder.start()
        router = EventRouter(clock=self.clock)
        router.on_unclaimed = self._on_unclaimed
        return CallContext(
            config=config,
            client=AriClient(config.ari.url, config.ari.user, config.ari_password, config.ari.app),
            router=router,
            recorder=recorder,
            spool=spool,
            audit=AuditLog(config.privacy.audit_log, keys.recipients, signer=keys.signer),
            recipients=keys.recipients,
            pseudonym_key=keys.pseudonym_key,
            clock=self.clock,
            recording_problem=keys.problem,
            live=live,
        )

    async def main_loop(self) -> None:
        assert self._events is not None
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({stop, self._events}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if self._events.done() and not self._events.cancelled():
            # The event stream only ends on an error it cannot retry (401).
            self._events.result()

    def request_stop(self) -> None:
        """Begin the shutdown (what SIGTERM does)."""
        self._stop.set()

    async def shutdown(self) -> None:
        """Stop taking calls, seal every recording, leave the callers connected."""
        self._accepting = False
        notify(STOPPING)
        for reload in self._reloads:
            reload.cancel()
        logger.info("shutting down: %d call(s) in progress", len(self.sessions))
        if not self._stop_audited:
            self._stop_audited = True
            calls = len(self.sessions)
            self._audit_service(
                ServiceAction.STOP, identity=False, reason=self._stop_reason, calls_open=calls
            )
        for session in list(self.sessions.values()):
            session.end(End.SHUTDOWN)
        # Calls and extra services seal their recordings side by side.
        stops = [asyncio.ensure_future(s.stop()) for s in reversed(self.extra_services)]
        waiting = set(self._tasks) | set(stops)
        if waiting:
            _, pending = await asyncio.wait(waiting, timeout=SHUTDOWN_TIMEOUT)
            for task in pending:
                task.cancel()
        for stop in stops:
            if stop.done() and not stop.cancelled() and stop.exception() is not None:
                logger.error("service did not stop cleanly: %s", safe(str(stop.exception()), 200))
        if self._events is not None:
            self._events.cancel()
            with contextlib.suppress(asyncio.CancelledError, CallrecError):
                await self._events
        if self.ctx is not None:
            await self.ctx.client.close()
            await self.ctx.recorder.stop()
        logger.info("callrec app stopped")

    # --- signals --------------------------------------------------------------

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        handlers = {sig: self._on_signal for sig in HANDLED_SIGNALS}
        handlers[RELOAD_SIGNAL] = self._on_reload_signal
        for sig, handler in handlers.items():
            try:
                self._saved_signals[sig] = signal.getsignal(sig)
                loop.add_signal_handler(sig, handler, sig)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not the main thread (tests run the app inside another loop).
                self._saved_signals.pop(sig, None)

    def _restore_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig, previous in self._saved_signals.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous)
        self._saved_signals.clear()

    def _on_signal(self, sig: int) -> None:
        name = signal.Signals(sig).name
        logger.info("received %s", name)
        self._stop_reason = name
        self.request_stop()

    def _on_reload_signal(self, sig: int) -> None:
        logger.info("received %s: reloading the config", signal.Signals(sig).name)
        self._reloads.add(task := asyncio.create_task(self.reload(), name="reload"))
        task.add_done_callback(self._reloads.discard)

    def _start_watchdog(self) -> asyncio.Task[None] | None:
        """Ping systemd's watchdog from this loop when the unit asks for it (WatchdogSec=)."""
        interval = watchdog_interval()
        if interval is None:
            return None
        logger.info("systemd watchdog: WATCHDOG=1 every %.1f s", interval)
        return asyncio.create_task(feed_watchdog(interval, self.clock), name="watchdog")

    def _apply_log_level(self, config: Config) -> None:
        if self.level_source is LevelSource.CONFIG:
            logging.getLogger().setLevel(config.logging.level)

    # --- reload ---------------------------------------------------------------

    async def reload(self) -> bool:
        """Read the config file again (SIGHUP); True when the new one runs.

        The next calls use it; a call in progress keeps the context it started
        with. A config with problems is refused and the running one stays
        (``ari_app/settings.py``, ``callrec/config_reload.py``).
        """
        async with self._reload_lock:
            if self.ctx is None or not self._accepting:
                logger.warning("reload ignored: callrec is starting or stopping")
                return False
            if self._ready:
                notify(*reloading(), "STATUS=reloading the config")
            applied = False
            try:
                applied = await self._reload()
            except Exception:  # a reload must never end the recorder
                logger.exception("reload failed: the running config stays")
            if self._ready:
                notify(READY, _status(applied, self.ctx.client.base_url))
            return applied

    async def _reload(self) -> bool:
        assert self.ctx is not None
        outcome = await reread(self.ctx)
        if isinstance(outcome, Refused):
            self._audit_service(
                ServiceAction.RELOAD,
                identity=False,
                result=ReloadResult.REFUSED,
                problems=[f"{p.file}:{p.key}" for p in outcome.problems],
                config=outcome.config_file,
            )
            return False
        plan = outcome.plan
        self.config, self.ctx = plan.config, outcome.ctx
        self._apply_log_level(plan.config)
        await self._reload_services(plan.config)
        changed = ", ".join(plan.changed) or "no setting changed"
        logger.info("config %s reloaded: %s", plan.config.path, changed)
        self._audit_service(
            ServiceAction.RELOAD,
            result=ReloadResult.OK,
            changed=list(plan.changed),
            needs_restart=list(plan.needs_restart),
            config=outcome.config_file,
        )
        return True

    async def _reload_services(self, config: Config) -> None:
        for service in self.extra_services:
            if isinstance(service, Reloadable):
                try:
                    await service.reload(config)
                except Exception:  # one service's trouble must not undo the reload
                    logger.exception("%s did not take the new config", type(service).__name__)

    def _audit_service(
        self, action: ServiceAction, *, identity: bool = True, **fields: Any
    ) -> None:
        """A ``service`` audit line; with ``identity`` the keys and config it runs with."""
        if self.ctx is None:
            return
        if identity:
            signer = self.ctx.audit.signer
            fields.setdefault("config", file_digest(self.config.path))
            fields["recorder_key"] = None if signer is None else signer.fingerprint
            fields["recipients"] = [key.fingerprint for key in self.ctx.recipients]
        self.ctx.append_audit(service_record(action, **fields), {})

    # --- events ---------------------------------------------------------------

    async def _consume_events(self) -> None:
        assert self.ctx is not None
        async for item in self.ctx.client.events():
            if isinstance(item, Connected):
                await self._on_connected(item)
            elif isinstance(item, Disconnected):
                self.connected.clear()
            else:
                self.ctx.router.dispatch(item)

    async def _on_connected(self, item: Connected) -> None:
        assert self.ctx is not None
        startup = await self._startup_time_now()
        known = self._startup_time
        if known is not None and startup is not None and startup != known:
            logger.warning(
                "Asterisk restarted (started %s): open calls are gone", safe(str(startup))
            )
            self.ctx.router.reset()
            for session in list(self.sessions.values()):
                session.end(End.PBX_RESTART)
        elif known is not None:
            # Same boot (or its start time unreadable): the channels decide.
            await self._readopt()
        self._startup_time = startup or self._startup_time
        self.ctx.pbx_boot = self._startup_time
        if not self._recovered:
            await self._recover()
        self.connections += 1
        self.connected.set()
        if self.connections == 1:
            # Ready means serving calls, not "the app is listed": Asterisk lists
            # the app of a crashed recorder too (docs/OPERATIONS.md).
            notify(READY, f"STATUS=connected to {self.ctx.client.base_url}")
            self._ready = True

    async def _recover(self) -> None:
        """Take over, audit and clean what a crashed predecessor left (ari_app/recovery.py)."""
        assert self.ctx is not None
        recovery = CrashRecovery(self.ctx, self.extra_services)
        survey = await recovery.survey()
        if survey is None:
            return  # ARI could not be read: tried again at the next connection
        self._recovered = True
        plan = await recovery.plan(survey, skip=set(self.sessions))
        for session in plan.resumed:
            self._start(session)
        if plan.resumed or plan.lost:
            logger.warning(
                "found %d call(s) of a previous recorder still up, %d gone",
                len(plan.resumed),
                len(plan.lost),
            )
        chore = asyncio.create_task(recovery.clean_up(plan), name="recovery-clean-up")
        self._tasks.add(chore)
        chore.add_done_callback(self._tasks.discard)

    async def _startup_time_now(self) -> str | None:
        assert self.ctx is not None
        try:
            return (await self.ctx.client.asterisk_info()).startup_time
        except (AriError, AriUnavailable) as exc:
            logger.warning("cannot read Asterisk's start time: %s", safe(str(exc), 200))
            return None

    async def _readopt(self) -> None:
        """After a websocket drop: keep the calls whose channels survived."""
        assert self.ctx is not None
        try:
            alive = {c.id: c for c in await self.ctx.client.list_channels()}
        except (AriError, AriUnavailable) as exc:
            logger.warning("cannot list channels after reconnecting: %s", safe(str(exc), 200))
            return
        for session in list(self.sessions.values()):
            if session.id not in alive:
                session.channel_gone()
            else:
                if session.agent_id is not None and session.agent_id not in alive:
                    session.agent_gone()
                await session.resync(alive)
        logger.info("reconnected: %d call(s) re-adopted", len(self.sessions))

    def _on_unclaimed(self, event: Event) -> None:
        if not isinstance(event, StasisStart) or not self._is_new_call(event):
            return
        assert self.ctx is not None
        if not self._accepting:
            logger.info("channel %s: not taken, shutting down", safe(event.channel.id))
            return
        self._start(CallSession(self.ctx, event))

    def _start(self, session: CallSession) -> None:
        self.sessions[session.id] = session
        task = asyncio.create_task(session.run(), name=f"call-{session.id}")
        self._tasks.add(task)
        task.add_done_callback(self._finished(session))

    def _finished(self, session: CallSession) -> Callable[[asyncio.Task[None]], None]:
        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            # Ids restart after a PBX restart: never drop a newer call's session.
            if self.sessions.get(session.id) is session:
                del self.sessions[session.id]

        return done

    @staticmethod
    def _is_new_call(event: StasisStart) -> bool:
        if event.args and event.args[0] in (SNOOP_APP_ARG, AGENT_APP_ARG):
            return False
        return not event.channel.name.startswith(TAP_CHANNEL_PREFIXES)

    # --- start-up housekeeping ------------------------------------------------

    def _adopt_leftovers(self) -> None:
        """Move ``.crec.part`` files a crash left behind into the dated spool."""
        assert self.ctx is not None
        spool = self.ctx.spool
        for path in spool.leftovers():
            try:
                when = path.stat().st_mtime
                final = spool.adopt(path, when)
            except (CallrecError, OSError) as exc:
                logger.error("leftover %s not adopted: %s", safe(path.name), safe(str(exc), 200))
                continue
            logger.warning("adopted leftover recording %s (never sealed)", safe(final.name))
            record = audit_record(
                "recording-adopted",
                recording_id=final.name.removesuffix(PART_SUFFIX),
                reason="left open by a crash or kill; never sealed",
                path=str(final),
                moved_from=str(path),
                last_written=iso_utc(when),
            )
            self.ctx.append_audit(record, {})


def _status(applied: bool, url: str) -> str:
    """systemd's STATUS= after a reload (``systemctl status`` shows it)."""
    done = "config reloaded" if applied else "reload refused: the previous config runs"
    return f"STATUS={done}; connected to {url}"


def _live_store(spool: Path) -> LiveStore | None:
    """Where each live call's crash-safe record goes, or None (logged) when nowhere."""
    live = LiveStore(spool)
    try:
        live.ensure()
    except (CallrecError, OSError) as exc:
        logger.error("no crash recovery of calls: %s", safe(str(exc), 200))
        return None
    return live
