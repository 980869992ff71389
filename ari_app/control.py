"""The control socket of ``callrec serve``: the calls listed, paused and resumed.

What a CRM or an agent desktop uses to keep a card number out of a recording
(``callrec calls pause CALL_ID``). A Unix stream socket at ``[control]
socket``, never a network port: it is made under a temporary name, set to
mode 0600 and only then renamed into place, so it is never reachable by
anybody but its owner (and root), and each peer's uid is checked again
(SO_PEERCRED). The protocol is :mod:`callrec.control_protocol`. One of the
app's extra services (``callrec/cli/app_cmds.py``): started after the app's
start-up, stopped before its shutdown; the path is read at start only.

It shows both front ends' recorded calls: the Stasis app's sessions and the
dialplan's (FastAGI) recordings, which ``agi.fastagi.AgiService.recorded``
offers as :class:`Recorded` without this module importing the AGI side.
Either is paused through its own recording's pause control, so a pause from
here and one from the agent's code or the dialplan's ``/pause`` are the same
pause.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import stat
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from ari_app.session import CallSession
from callrec.clock import iso_utc
from callrec.config import Config
from callrec.control_protocol import (
    MAX_REQUEST,
    ControlError,
    Op,
    Request,
    encode,
    error_reply,
    parse_request,
)
from callrec.logutil import CallLogAdapter, mask_number, safe
from callrec.pausing import PauseSource

logger = logging.getLogger(__name__)

# A CRM sends a request and waits; one that stays silent this long is dropped.
IDLE_TIMEOUT = 30.0
MAX_CONNECTIONS = 16
_PEERCRED = struct.Struct("3i")  # pid, uid, gid


class Calls(Protocol):
    """Whose calls the socket shows (the :class:`~ari_app.app.App`)."""

    @property
    def sessions(self) -> dict[str, CallSession]: ...


class Recorded(Protocol):
    """One recorded call as the socket lists, pauses and resumes it, whichever
    front end records it."""

    @property
    def call(self) -> str:
        """The id the list shows first (the caller's channel id)."""

    @property
    def names(self) -> tuple[str | None, ...]:
        """Every id a request may name it by."""

    @property
    def paused(self) -> bool: ...

    @property
    def failure(self) -> str | None:
        """Why its recording broke, if it did (said when a pause or resume cannot be)."""

    @property
    def log(self) -> CallLogAdapter: ...

    def row(self) -> dict[str, Any]:
        """As ``callrec calls list`` shows it (the caller's number masked)."""

    def set_paused(self, pause: bool, source: PauseSource) -> bool:
        """Pause or resume; False when nothing changed; :class:`ControlError` when
        it cannot be asked (not recorded)."""


class DialplanCalls(Protocol):
    """The dialplan's recordings (:class:`agi.fastagi.AgiService`)."""

    def recorded(self) -> Iterable[Recorded]: ...


class ControlService:
    """The control socket, one of the app's extra services."""

    def __init__(
        self, config: Config, calls: Calls, dialplan: DialplanCalls | None = None
    ) -> None:
        self.path = config.control.socket
        self._calls = calls
        self._dialplan = dialplan
        self._server: asyncio.Server | None = None
        self._inode: int | None = None
        self._open: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        """Listen; a socket that cannot be made is logged at ERROR and calls go on."""
        if self.path is None:
            return
        try:
            sock = self._bind(self.path)
        except (OSError, ControlError) as exc:
            logger.error("no control socket at %s: %s", self.path, safe(str(exc), 200))
            return
        self._server = await asyncio.start_unix_server(self._serve, sock=sock, limit=MAX_REQUEST)
        logger.info("control socket at %s (owner only)", self.path)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._open):
            task.cancel()
        await asyncio.gather(*self._open, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
        assert self.path is not None
        with contextlib.suppress(OSError):
            if self._inode is not None and self.path.lstat().st_ino == self._inode:
                self.path.unlink()  # ours still: the next start finds no stale socket

    # --- the socket -------------------------------------------------------------

    def _bind(self, path: Path) -> socket.socket:
        _make_folder(path.parent)
        _clear_stale(path)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(temporary))
            try:
                os.chmod(temporary, 0o600)
                os.rename(temporary, path)
            except OSError:
                temporary.unlink(missing_ok=True)
                raise
            sock.listen(MAX_CONNECTIONS)
        except OSError:
            sock.close()
            raise
        self._inode = path.lstat().st_ino
        return sock

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._open.add(task)
        try:
            uid = _peer_uid(writer)
            if len(self._open) > MAX_CONNECTIONS:
                writer.write(error_reply("busy: too many control connections"))
            elif uid not in (os.getuid(), 0):
                logger.warning("control socket: uid %s refused", uid)
                writer.write(error_reply("not allowed"))
            else:
                await self._requests(reader, writer, uid)
            await writer.drain()
        except (ConnectionError, TimeoutError):
            pass
        finally:
            self._open.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, uid: int | None
    ) -> None:
        while True:
            try:
                line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
            except ValueError:  # no newline within MAX_REQUEST bytes
                writer.write(error_reply(f"a request is one line of at most {MAX_REQUEST} bytes"))
                return
            if not line:
                return
            try:
                reply = self.answer(parse_request(line), uid)
            except ControlError as exc:
                writer.write(error_reply(exc.message))
            else:
                writer.write(encode(reply))
            await writer.drain()

    # --- requests -------------------------------------------------------------------

    def answer(self, request: Request, uid: int | None = None) -> dict[str, Any]:
        """The reply to one request; :class:`ControlError` says what is wrong."""
        if request.op is Op.LIST:
            return {"ok": True, "calls": [call.row() for call in self._recorded()]}
        assert request.call is not None
        call = self._find(request.call)
        pausing = request.op is Op.PAUSE
        changed = call.set_paused(pausing, PauseSource.CONTROL)
        if changed:
            call.log.info("control socket (uid %s): %s", uid, request.op)
        elif call.paused != pausing:
            # Still paused after a resume, or recording after a pause: the
            # recording can no longer change (its writer refused the mark).
            raise ControlError(_ended(call, request.op))
        return {"ok": True, "call": call.call, "paused": call.paused, "changed": changed}

    def _recorded(self) -> list[Recorded]:
        stasis: list[Recorded] = [StasisCall(s) for s in self._calls.sessions.values()]
        return stasis + list(() if self._dialplan is None else self._dialplan.recorded())

    def _find(self, name: str) -> Recorded:
        for call in self._recorded():
            if name in call.names:
                return call
        raise ControlError(f"no call {name} in progress (`callrec calls list` shows them)")


def _ended(call: Recorded, op: Op) -> str:
    why = call.failure
    because = "" if not why else f": {safe(why, 500)}"
    return f"call {call.call}: cannot {op}: its recording has ended{because}"


class StasisCall:
    """A call of the Stasis app, as the socket sees it."""

    def __init__(self, session: CallSession) -> None:
        self._session = session

    @property
    def call(self) -> str:
        return self._session.id

    @property
    def names(self) -> tuple[str | None, ...]:
        session, tap = self._session, self._session.tap
        recording = None if tap is None else tap.recording_id
        return (session.id, session.evidence.linkedid, session.agent_id, recording)

    @property
    def paused(self) -> bool:
        return self._session.pauses is not None and self._session.pauses.paused

    @property
    def failure(self) -> str | None:
        return self._session.failure

    @property
    def log(self) -> CallLogAdapter:
        return self._session.log

    def set_paused(self, pause: bool, source: PauseSource) -> bool:
        pauses = self._session.pauses
        if pauses is None:
            raise ControlError(f"call {self.call} is not being recorded")
        return (pauses.pause if pause else pauses.resume)(source)

    def row(self) -> dict[str, Any]:
        session = self._session
        pauses = session.pauses
        return {
            "call": session.id,
            "frontend": "ari",
            "call_id": session.id,
            "linkedid": session.evidence.linkedid,
            "agent": session.agent_id,
            "state": str(session.state),
            "started": iso_utc(session.started),
            "dialled": session.number,
            "caller": mask_number(session.channel.caller.number),
            "recording": None if session.tap is None else session.tap.recording_id,
            "paused": self.paused,
            "pauses": 0 if pauses is None else len(pauses.control.pauses),
        }


def _make_folder(folder: Path) -> None:
    """The socket's folder, made owner-only when missing (systemd's RuntimeDirectory
    makes it otherwise)."""
    with contextlib.suppress(FileExistsError):
        folder.mkdir(mode=0o700)


def _clear_stale(path: Path) -> None:
    """Remove a socket a dead ``serve`` left; never anything else, never a live one."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlError(f"{path} exists and is not a socket")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except ConnectionRefusedError:
        path.unlink()
        return
    finally:
        probe.close()
    raise ControlError("another callrec serve answers there")


def _peer_uid(writer: asyncio.StreamWriter) -> int | None:
    sock = writer.get_extra_info("socket")
    if sock is None:
        return None
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    return int(_PEERCRED.unpack(data)[1])
