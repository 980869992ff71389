"""Which local processes are ``callrec serve``, and who listens on a TCP port.

Read from Linux's ``/proc``: a process's command line is readable by every
user, its open files (and so which socket it holds) only by its own user
and root. Where the doctor cannot see, the answer is None ("unknown"), never
a guess.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's "st" column
_SERVE_MODULES = ("callrec", "callrec.cli")


@dataclass(frozen=True)
class ServeProcess:
    """A running ``callrec serve``; ``config`` is the file it runs with, when known."""

    pid: int
    config: Path | None

    def runs(self, config: Path) -> bool | None:
        """Whether it runs ``config`` (None: its config cannot be told)."""
        if self.config is None:
            return None
        return self.config == config.resolve()


@dataclass(frozen=True)
class Listener:
    """A TCP socket listening on a port: its owner's uid and, if visible, the process."""

    uid: int
    pid: int | None


def _argv(pid_dir: Path) -> list[str]:
    try:
        raw = (pid_dir / "cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]


def is_callrec_serve(argv: list[str]) -> bool:
    """``callrec serve ...``, ``python -m callrec serve ...`` or ``python .../callrec serve``."""
    if "serve" not in argv:
        return False
    program = argv[: argv.index("serve")]
    if any(Path(a).name == "callrec" for a in program):
        return True
    return any(a == "-m" and b in _SERVE_MODULES for a, b in itertools.pairwise(program))


def _config_arg(argv: list[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--config" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--config="):
            return arg.partition("=")[2]
    return None


def _config_of(pid_dir: Path, argv: list[str]) -> Path | None:
    given = _config_arg(argv)
    if given is None:
        return None
    path = Path(given)
    if not path.is_absolute():
        try:
            path = Path(os.readlink(pid_dir / "cwd")) / path
        except OSError:  # another user's process
            return None
    return path.resolve()


def _pid_dirs(proc: Path) -> list[Path]:
    try:
        return [p for p in proc.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def serve_processes(proc: Path = PROC) -> list[ServeProcess]:
    """Every ``callrec serve`` running on this host (this process excluded)."""
    found = []
    for pid_dir in _pid_dirs(proc):
        argv = _argv(pid_dir)
        if int(pid_dir.name) != os.getpid() and is_callrec_serve(argv):
            found.append(ServeProcess(int(pid_dir.name), _config_of(pid_dir, argv)))
    return sorted(found, key=lambda p: p.pid)


def _listening_inodes(port: int, proc: Path) -> dict[str, int]:
    """Inode -> owner uid of the TCP sockets listening on ``port`` (IPv4 and IPv6)."""
    inodes = {}
    for table in ("tcp", "tcp6"):
        try:
            rows = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if (
                len(cols) > 9
                and cols[3] == _LISTEN
                and int(cols[1].rpartition(":")[2], 16) == port
            ):
                inodes[cols[9]] = int(cols[7])
    return inodes


def _holder(inodes: set[str], proc: Path) -> int | None:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for pid_dir in _pid_dirs(proc):
        try:
            fds = list((pid_dir / "fd").iterdir())
        except OSError:  # not ours to look at, or gone
            continue
        for fd in fds:
            try:
                if os.readlink(fd) in wanted:
                    return int(pid_dir.name)
            except OSError:
                continue
    return None


def tcp_listener(port: int, proc: Path = PROC) -> Listener | None:
    """Who listens on TCP ``port`` (any address), or None when nothing does."""
    inodes = _listening_inodes(port, proc)
    if not inodes:
        return None
    uid = next(iter(inodes.values()))
    return Listener(uid, _holder(set(inodes), proc))


def command_name(pid: int, proc: Path = PROC) -> str:
    """The short name of process ``pid`` (``asterisk``, ``python3``), or ``?``."""
    try:
        return (proc / str(pid) / "comm").read_text().strip() or "?"
    except OSError:
        return "?"
