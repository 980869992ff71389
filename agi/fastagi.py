"""The asyncio FastAGI server: one task per Asterisk connection.

``AGI(agi://127.0.0.1:4573/consent)`` makes Asterisk connect, send its
environment block and wait for commands. The server reads the block, picks
the handler for ``agi_network_script`` (consent, record, stop, pause,
resume) and runs it. Whatever happens, it ends by closing the socket, which
lets Asterisk continue the dialplan: a channel is never left stuck in AGI().
A handler that fails sets ``CALLREC_ERROR`` first, while the channel can
still take commands.

:class:`FastAgiServer` knows nothing about consent or recording;
:class:`AgiService` routes the scripts to :mod:`agi.gate` and
:mod:`agi.recording` and is what ``callrec serve`` starts beside the Stasis
app (``App(extra_services=...)``); it also offers its recordings to the
control socket (:meth:`AgiService.recorded`, :class:`DialplanCall`), so a CRM
lists, pauses and resumes them as it does the Stasis app's calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agi.gate import ERROR_VARIABLE, AgiConsent, ConsentLedger
from agi.protocol import MAX_LINE_BYTES, AgiConnection, AgiEnvironment
from agi.recording import (
    SWEEP_INTERVAL,
    ActiveRecording,
    AgiRecordings,
    CoreProvider,
    CoreServices,
)
from agi.takeover import AgiTakeOver
from callrec.clock import iso_utc
from callrec.config import AgiConfig, Config
from callrec.consent import records
from callrec.control_protocol import ControlError
from callrec.errors import (
    AgiDeadChannel,
    AgiError,
    AgiHangup,
    CallrecError,
    RecordingUnavailable,
)
from callrec.live import LiveCall
from callrec.logutil import CallLogAdapter, mask_number, safe
from callrec.pausing import PauseSource
from callrec.takeover import Survey

logger = logging.getLogger(__name__)

AgiHandler = Callable[[AgiConnection, AgiEnvironment], Awaitable[None]]
HandlerFactory = Callable[[AgiEnvironment], AgiHandler | None]

# Asterisk sends the block at once; a peer that does not is not Asterisk.
ENV_TIMEOUT = 5.0
# After it, each reply may take as long as a prompt plays (agi.read_timeout).
READ_TIMEOUT = AgiConfig.read_timeout
# How long stop() lets running sessions finish before cancelling them, and
# how long a cancelled one may wait for the reply in flight.
STOP_GRACE = 2.0
SETTLE_TIMEOUT = 1.0


async def set_error(agi: AgiConnection, reason: str) -> None:
    """Tell the dialplan why nothing happened."""
    await agi.set_variable_quietly(ERROR_VARIABLE, reason)


class FastAgiServer:
    """Accepts FastAGI connections and runs the handler the factory picks."""

    def __init__(
        self,
        handler_factory: HandlerFactory,
        host: str = "127.0.0.1",
        port: int = 4573,
        *,
        env_timeout: float = ENV_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
    ) -> None:
        self._factory = handler_factory
        self._host = host
        self._port = port
        self._env_timeout = env_timeout
        self._read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._sessions: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        """The bound port (useful when started with port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self._host, self._port, limit=MAX_LINE_BYTES
        )
        logger.info("FastAGI listening on %s:%s", self._host, self.port)

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop accepting, give running sessions ``grace`` seconds, then cancel them."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        if self._sessions:
            _, pending = await asyncio.wait(set(self._sessions), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        logger.info("FastAGI stopped")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        task.add_done_callback(self._sessions.discard)
        agi = AgiConnection(reader, writer, read_timeout=self._read_timeout)
        try:
            await self._session(agi)
        finally:
            await agi.close()

    async def _session(self, agi: AgiConnection) -> None:
        try:
            env = await asyncio.wait_for(agi.read_environment(), self._env_timeout)
        except (AgiError, TimeoutError) as exc:
            logger.warning(
                "FastAGI connection dropped before its environment: %s",
                safe(str(exc) or "timeout"),
            )
            return
        log = CallLogAdapter(logger, env.uniqueid or "-")
        handler = self._factory(env)
        if handler is None:
            log.warning("unknown FastAGI script %s", safe(env.network_script))
            await set_error(agi, "unknown-script")
            return
        try:
            await handler(agi, env)
        except (AgiHangup, AgiDeadChannel):
            # The h extension can still read it: SET VARIABLE works on a dead channel.
            log.info("channel hung up during %s", safe(env.network_script))
            await set_error(agi, "hangup")
        except CallrecError as exc:
            log.warning("%s failed: %s", safe(env.network_script), safe(str(exc)))
            await set_error(agi, "failed")
        except asyncio.CancelledError:
            # A reply still on its way would be taken for the answer to SET
            # VARIABLE: read it first, if it comes soon.
            if await agi.settle(SETTLE_TIMEOUT):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(set_error(agi, "shutdown"), SETTLE_TIMEOUT)
            raise
        except Exception:
            # A bug must not leave the channel waiting in AGI().
            log.exception("%s crashed", safe(env.network_script))
            await set_error(agi, "internal")


class AgiService:
    """The FastAGI front end of ``callrec serve``: consent, record, stop, pause, resume.

    ``core`` returns the running app's shared services (the Stasis app's
    ``CallContext`` fits :class:`~agi.recording.CoreServices`), or None
    while there are none; it is read at :meth:`start`, after the app's own
    start-up.
    """

    def __init__(
        self, config: Config, core: CoreProvider, *, sweep_interval: float = SWEEP_INTERVAL
    ) -> None:
        self.config = config
        self._core = core
        self.ledger = ConsentLedger()
        self.recordings = AgiRecordings(
            core,
            self.ledger,
            on_failure=config.recording.on_failure,
            sweep_interval=sweep_interval,
        )
        self.server = FastAgiServer(
            self.route, config.agi.host, config.agi.port, read_timeout=config.agi.read_timeout
        )
        self._consent: AgiConsent | None = None
        self._takeover = AgiTakeOver(self.recordings, self.ledger)

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        core = self._core()
        if core is None:
            raise RecordingUnavailable("FastAGI: the app's services are not running")
        self._consent = self._gate(core)
        # A predecessor's calls, paused or resumed before they are taken over
        # (agi.waiting); an unreadable record is the app's recovery's to audit.
        if core.live is not None:
            records, _ = await asyncio.to_thread(core.live.load)
            self.recordings.waiting.add(records, skip=self.recordings.active)
        await self.server.start()

    def _gate(self, core: CoreServices) -> AgiConsent:
        return AgiConsent(
            self.config,
            core.pseudonym_key,
            core.clock,
            ledger=self.ledger,
            audit=core.append_audit,
        )

    async def reload(self, config: Config) -> None:
        """The next AGI sessions use ``config`` (SIGHUP): prompts, consent, policy.

        A session already running keeps the gate it started with. The listen
        address and read timeout need a restart (the app keeps them).
        """
        self.config = config
        self.recordings.on_failure = config.recording.on_failure
        core = self._core()
        if core is not None and self._consent is not None:
            self._consent = self._gate(core)

    def take_over(self, survey: Survey, records: Sequence[LiveCall]) -> None:
        """The recordings a crashed predecessor left (:mod:`agi.takeover`): record
        the rest of each call still up; called by the Stasis app's recovery on
        its first connection, with its one snapshot of Asterisk."""
        core = self._core()
        if core is not None:
            self._takeover.start(core, survey, records)

    def recorded(self) -> list[DialplanCall]:
        """The recordings in progress, for the control socket (``callrec calls``)."""
        return [DialplanCall(active) for active in self.recordings.active.values()]

    async def stop(self) -> None:
        """Stop taking AGI sessions, then seal every recording started over AGI."""
        await self.server.stop()
        await self._takeover.stop()
        await self.recordings.close_all("shutdown")

    def route(self, env: AgiEnvironment) -> AgiHandler | None:
        routes: dict[str, AgiHandler] = {
            "consent": self.consent,
            "record": self.record,
            "stop": self.recordings.stop,
            "pause": self.recordings.pause,
            "resume": self.recordings.resume,
        }
        return routes.get(env.network_script)

    async def record(self, agi: AgiConnection, env: AgiEnvironment) -> None:
        await self.recordings.record(agi, env)

    async def consent(self, agi: AgiConnection, env: AgiEnvironment) -> None:
        """``/consent``; with ``record_after_consent`` the recording starts right after.

        The call then has one audit line, written when its recording is sealed
        (or fails), as in the Stasis app; otherwise the consent's own line.
        """
        gate = self._consent  # a reload meanwhile must not change this call's gate
        assert gate is not None, "AgiService.start() not called"
        auto = self.config.agi.record_after_consent
        outcome = await gate.run(agi, env, audit=not auto)
        if not auto:
            return
        decision = outcome.decision
        recording = False
        if decision is not None and records(decision) and not agi.hung_up:
            recording = await self.recordings.record(agi, env)
        if not recording:
            gate.write_audit(outcome)


class DialplanCall:
    """A dialplan recording as the control socket sees it (``callrec calls``).

    Named by the channel's uniqueid, ``CALLREC_ID``, the linkedid or the
    recording id; paused through :meth:`ActiveRecording.set_paused`, the path
    of the dialplan's own ``/pause`` and ``/resume``, so either resumes what
    the other paused.
    """

    def __init__(self, active: ActiveRecording) -> None:
        self._active = active

    @property
    def call(self) -> str:
        return self._active.uniqueid

    @property
    def names(self) -> tuple[str | None, ...]:
        active = self._active
        linkedid = active.consent.evidence.linkedid
        return (active.uniqueid, active.consent.call_id, linkedid, active.tap.recording_id)

    @property
    def paused(self) -> bool:
        return self._active.tap.paused

    @property
    def failure(self) -> str | None:
        return self._active.failure or None

    @property
    def log(self) -> CallLogAdapter:
        return self._active.log

    @property
    def starting(self) -> bool:
        return self._active.watcher is None  # set once the tap has started

    def set_paused(self, pause: bool, source: PauseSource) -> bool:
        if self.starting:
            raise ControlError(f"call {self.call}: its recording is starting: ask again")
        return self._active.set_paused(pause, source)

    def row(self) -> dict[str, Any]:
        active = self._active
        evidence, tap = active.consent.evidence, active.tap
        state = "starting" if self.starting else "ending" if active.ended.is_set() else "recording"
        started = tap.started_at
        return {
            "call": active.uniqueid,
            "frontend": "agi",
            "call_id": active.consent.call_id,
            "linkedid": evidence.linkedid,
            "agent": None,
            "state": state,
            "started": None if started is None else iso_utc(started),
            "dialled": evidence.dialled,
            "caller": mask_number(evidence.personal.get("caller_number", "")),
            "recording": tap.recording_id,
            "paused": tap.paused,
            "pauses": len(tap.pauses.pauses),
        }
