"""The FastAGI port (``[agi] listen``): free for ``callrec serve``, or served by it.

The doctor binds the address for a moment, as ``serve`` will. Taken is fine
when the taker is the ``callrec serve`` of this very config; anything else
there answers the dialplan's ``AGI(agi://...)`` in callrec's place.
"""

from __future__ import annotations

import errno
import pwd
import socket
from collections.abc import Sequence

from callrec.doctor.loading import DoctorConfig
from callrec.doctor.procs import ServeProcess, command_name, tcp_listener
from callrec.doctor.result import CheckName, CheckResult
from callrec.spool import os_reason

_HINT_TAKEN = "stop what holds it, or give callrec another agi.listen (and the dialplan's AGI())"


def _bind(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # As asyncio's server does: a port in TIME_WAIT is free for serve.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def check_fastagi(dc: DoctorConfig, serves: Sequence[ServeProcess]) -> CheckResult:
    agi = dc.config.agi
    where = f"[{agi.host}]:{agi.port}" if ":" in agi.host else f"{agi.host}:{agi.port}"
    data = {"listen": where}
    if agi.port == 0:
        return CheckResult.warn(
            CheckName.FASTAGI,
            f"{where}: serve picks a free port the dialplan cannot know",
            "set agi.listen to a fixed port (e.g. 127.0.0.1:4573) if the dialplan uses AGI()",
            data=data,
        )
    try:
        _bind(agi.host, agi.port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return _taken(where, agi.port, dc, serves)
        why = {
            errno.EADDRNOTAVAIL: "not an address of this host",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
        }.get(exc.errno or 0, os_reason(exc))
        return CheckResult.fail(
            CheckName.FASTAGI,
            f"{where}: cannot listen: {why}",
            "agi.listen must be an address and port of this host callrec may bind",
            data=data,
        )
    return CheckResult.ok(
        CheckName.FASTAGI,
        f"{where} is free: callrec serve will listen there",
        data=data | {"state": "free"},
    )


def _taken(where: str, port: int, dc: DoctorConfig, serves: Sequence[ServeProcess]) -> CheckResult:
    listener = tcp_listener(port)
    ours = [s for s in serves if s.runs(dc.path) is not False]
    if listener is not None and listener.pid is not None:
        pid = listener.pid
        serve = next((s for s in serves if s.pid == pid), None)
        data = {"listen": where, "state": "taken", "pid": pid}
        if serve is not None and serve.runs(dc.path) is not False:
            return CheckResult.ok(
                CheckName.FASTAGI,
                f"{where} is served by the running callrec serve (pid {pid})",
                data=data | {"state": "served"},
            )
        what = "a callrec serve of another config" if serve else command_name(pid)
        return CheckResult.fail(
            CheckName.FASTAGI,
            f"{where} is taken by {what} (pid {pid})",
            _HINT_TAKEN,
            data=data,
        )
    if ours:
        # The socket's process is another user's: not visible, but this
        # config's serve listens there by definition.
        pid = ours[0].pid
        return CheckResult.ok(
            CheckName.FASTAGI,
            f"{where} is in use, by callrec serve (pid {pid}) as far as the doctor can see",
            data={"listen": where, "state": "served", "pid": pid},
        )
    owner = f" of user {_user(listener.uid)}" if listener is not None else ""
    return CheckResult.fail(
        CheckName.FASTAGI,
        f"{where} is taken by a process{owner} that is not callrec serve",
        _HINT_TAKEN,
        data={"listen": where, "state": "taken"},
    )
