"""The keys the recorder holds: recipients' public keys, its signing key, the pseudonym key.

What ``check-config`` finds wrong with each file is shown here (it is the
same check); the doctor adds what an admin wants to see when all is well
(which keys, by fingerprint; who may read the pseudonym key). No key
material is ever printed, only fingerprints, paths and modes.
"""

from __future__ import annotations

import grp
import pwd
import stat
from pathlib import Path

from callrec.crypto.keys import PublicKey
from callrec.crypto.signing import SigningKey
from callrec.doctor.loading import DoctorConfig
from callrec.doctor.result import CheckName, CheckResult
from callrec.errors import KeyFileError


def check_recipients(dc: DoctorConfig) -> CheckResult:
    """Every recipient public key loads: recordings can be sealed for each of them."""
    failure = dc.file_failure(
        CheckName.RECIPIENTS,
        "recording.recipients (nothing can be recorded)",
        "list the .pub files written by `callrec keygen` in recording.recipients",
    )
    if failure is not None:
        return failure
    details = []
    for path in dc.config.recording.recipients:
        try:
            details.append(f"{path}: {PublicKey.load(path).fingerprint}")
        except KeyFileError as exc:  # changed since check-config's look
            return CheckResult.fail(
                CheckName.RECIPIENTS,
                f"{path}: {exc.message}",
                "use the .pub file written by `callrec keygen`",
            )
    count = len(details)
    return CheckResult.ok(
        CheckName.RECIPIENTS, f"{count} recipient key(s) load", details=tuple(details)
    )


def check_signing_key(dc: DoctorConfig) -> CheckResult:
    """The recorder's signing key, when one is configured, loads and is private."""
    path = dc.config.recording.signing_key
    failure = dc.file_failure(
        CheckName.SIGNING_KEY,
        path,
        "a recorder signing key made by `callrec keygen --signing`, mode 600",
    )
    if failure is not None:
        return failure
    if path is None:
        return CheckResult.ok(
            CheckName.SIGNING_KEY, "none configured: recordings and audit lines are unsigned"
        )
    try:
        fingerprint = SigningKey.load(path).fingerprint
    except KeyFileError as exc:
        return CheckResult.fail(
            CheckName.SIGNING_KEY, f"{path}: {exc.message}", "recording.signing_key"
        )
    return CheckResult.ok(CheckName.SIGNING_KEY, f"{path}: signs as {fingerprint}")


def _owner(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_pseudonym_key(dc: DoctorConfig) -> CheckResult:
    """The pseudonym key loads and only its owner can read it.

    Whoever reads it can re-identify every pseudonymised caller by trying
    numbers. Other users never may (``check-config`` refuses that too); the
    group may only when it is the AGI script's, so a group bit is a warning.
    """
    path = dc.config.privacy.pseudonym_key
    failure = dc.file_failure(
        CheckName.PSEUDONYM_KEY,
        path,
        f"32 random bytes readable by its owner only: chmod 600 {path}",
    )
    if failure is not None:
        return failure
    try:
        st = Path(path).stat()
    except OSError as exc:
        return CheckResult.fail(
            CheckName.PSEUDONYM_KEY,
            f"{path}: {exc.strerror}",
            "privacy.pseudonym_key",
        )
    mode = stat.S_IMODE(st.st_mode)
    who = f"mode {mode:04o}, owner {_owner(st.st_uid)}"
    if mode & 0o070:
        return CheckResult.warn(
            CheckName.PSEUDONYM_KEY,
            f"{path}: group {_group(st.st_gid)} has access to it ({who})",
            f"fine only if that group is the AGI script's; else chmod 600 {path}",
        )
    return CheckResult.ok(CheckName.PSEUDONYM_KEY, f"{path}: readable by its owner only ({who})")
