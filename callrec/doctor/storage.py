"""Where recordings and audit lines go: writable, room left, crash leftovers.

The doctor never creates the spool: run as root it would make a folder the
service (user ``callrec``) cannot write. A spool that does not exist yet is
fine when ``callrec serve`` can create it; ``check-config``'s checks say so.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from callrec.doctor.loading import DoctorConfig
from callrec.doctor.result import CheckName, CheckResult
from callrec.errors import SpoolError
from callrec.spool import PART_SUFFIX, Spool, os_reason, write_all

DEFAULT_MIN_FREE = 1 << 30  # 1 GiB: about 37 hours of G.711 audio
_PROBE = b"callrec doctor probe\n" * 200  # about one 4 KiB segment, as a recording writes


@dataclass(frozen=True)
class Space:
    """Free bytes for an unprivileged writer on the spool's file system."""

    free: int
    total: int


def human(size: int) -> str:
    """``1536`` -> ``1.5 KiB``: sizes as an admin reads them."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def probe_write(folder: Path) -> None:
    """Write, fsync and remove a file in ``folder``: what a recording does first.

    Raises OSError. Permission bits can say yes to root where a full or
    read-only file system says no; only a write tells.
    """
    probe = folder / f".doctor-probe-{secrets.token_hex(8)}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        write_all(fd, _PROBE)
        os.fsync(fd)
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def check_spool(dc: DoctorConfig) -> CheckResult:
    """The spool is a folder callrec can write a file into (a probe written and removed)."""
    spool = dc.config.recording.spool
    failure = dc.file_failure(
        CheckName.SPOOL, spool, "recording.spool must be a folder the callrec user can write"
    )
    if failure is not None:
        return failure
    if not spool.exists():
        return CheckResult.warn(
            CheckName.SPOOL,
            f"{spool} does not exist yet",
            "callrec serve creates it; create it now (owned by the callrec user) to check it",
        )
    folder = Spool(spool).incoming if Spool(spool).incoming.is_dir() else spool
    try:
        probe_write(folder)
    except OSError as exc:
        return CheckResult.fail(
            CheckName.SPOOL,
            f"{folder}: cannot write a file: {os_reason(exc)}",
            "recording.spool must be writable by the user callrec serve runs as",
        )
    return CheckResult.ok(CheckName.SPOOL, f"{folder}: a probe file was written and removed")


def spool_space(path: Path) -> Space:
    """Free and total bytes of the file system holding ``path`` (or its nearest parent)."""
    st = os.statvfs(_existing(path))
    return Space(free=st.f_bavail * st.f_frsize, total=st.f_blocks * st.f_frsize)


def check_space(dc: DoctorConfig, min_free: int) -> CheckResult:
    """The spool's file system has at least ``min_free`` bytes left for recordings."""
    spool = dc.config.recording.spool
    try:
        space = spool_space(spool)
    except OSError as exc:
        return CheckResult.fail(
            CheckName.SPOOL_SPACE,
            f"{spool}: cannot read the free space: {os_reason(exc)}",
            "recording.spool must be a folder on a mounted file system",
        )
    data = {"free_bytes": space.free, "total_bytes": space.total, "min_free_bytes": min_free}
    summary = f"{human(space.free)} free of {human(space.total)} ({space.free} bytes)"
    if space.free < min_free:
        return CheckResult.fail(
            CheckName.SPOOL_SPACE,
            f"{summary}: under the {human(min_free)} the doctor asks for",
            "free space on the spool's file system or move recording.spool (--min-free sets "
            "the threshold)",
            data=data,
        )
    return CheckResult.ok(CheckName.SPOOL_SPACE, summary, data=data)


def _dated_parts(root: Path) -> list[Path]:
    return sorted(root.glob(f"[0-9]*/[0-9]*/[0-9]*/*{PART_SUFFIX}"))


def check_leftovers(dc: DoctorConfig, serving: bool) -> CheckResult:
    """``.crec.part`` files: recordings open now, or never sealed because of a crash.

    ``serving``: a ``callrec serve`` of this config runs, so files in
    ``incoming/`` may be calls in progress rather than leftovers.
    """
    spool = Spool(dc.config.recording.spool)
    if spool.root.exists() and not spool.root.is_dir():
        return CheckResult.skip(CheckName.LEFTOVERS, "the spool is no folder (see the spool line)")
    try:
        incoming = spool.leftovers()
        adopted = _dated_parts(spool.root)
    except (OSError, SpoolError) as exc:
        return CheckResult.fail(
            CheckName.LEFTOVERS,
            f"{spool.root}: cannot list: {exc}",
            "recording.spool must be readable by the callrec user",
        )
    data = {"incoming": len(incoming), "adopted": len(adopted)}
    if not incoming and not adopted:
        return CheckResult.ok(CheckName.LEFTOVERS, f"no {PART_SUFFIX} files", data=data)
    details = []
    if incoming:
        now = "open now or left by a crash" if serving else "left by a crash"
        details.append(
            f"{len(incoming)} in {spool.incoming} ({now}; callrec serve adopts them at start)"
        )
    if adopted:
        details.append(f"{len(adopted)} adopted into the dated folders (never sealed)")
    return CheckResult.warn(
        CheckName.LEFTOVERS,
        f"{len(incoming) + len(adopted)} {PART_SUFFIX} file(s)",
        "`callrec verify FILE` reports what each kept (TRUNCATED: every complete segment "
        "is released); look into the crash that left them",
        details=tuple(details),
        data=data,
    )


def check_audit_log(dc: DoctorConfig) -> CheckResult:
    """The audit log's folder takes files (``check-config``'s check), the log itself appends."""
    log = dc.config.privacy.audit_log
    failure = dc.file_failure(
        CheckName.AUDIT_LOG,
        log,
        "privacy.audit_log must name a file in a folder the callrec user can write",
    )
    if failure is not None:
        return failure
    if log.exists() and not os.access(log, os.W_OK):
        return CheckResult.fail(
            CheckName.AUDIT_LOG,
            f"{log}: not writable",
            "the callrec user must be able to append to the audit log",
        )
    state = "appends to" if log.exists() else "creates"
    return CheckResult.ok(CheckName.AUDIT_LOG, f"{log}: callrec {state} it")
