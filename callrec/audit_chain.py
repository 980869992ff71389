"""The audit log's hash chain and line signatures (docs/FORMAT.md, "Audit chain").

Every line (schema 2) commits to the one before it, so a line edited,
deleted, inserted or moved breaks the chain where it happened; with a
recorder signing key every line is also signed, so someone who can write the
log but does not hold the key cannot forge a line or rebuild the chain.

The chain commits to a salted hash of a line's personal fields, not to the
fields themselves (``PERSONAL_PATHS``): erasing a caller (GDPR Art. 17)
removes those fields and the salt from the line, and the chain still
verifies. The salt keeps the hash of a pseudonym from linking the erased
lines of one caller.

::

    digest(line)   = SHA-256("callrec audit line v2" 00 || canonical JSON of the line
                             without "sig" and without the personal fields)
    line["prev"]   = hex digest of the line before (64 zeros for the first)
    line["seq"]    = 1, 2, 3 ... (the first chained line is 1)
    line["personal_digest"] = hex SHA-256("callrec audit personal v2" 00 ||
                             canonical JSON of {path: value} of the personal fields
                             and the salt), or null when the line has none
    line["signer"] = base64 of the recorder's Ed25519 public key (signed lines)
    line["sig"]    = base64 Ed25519(SIGN_LABEL || digest)

Canonical JSON is how lines are written: sorted keys, no spaces, ASCII.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from callrec.crypto.keys import b64, b64decode_strict
from callrec.crypto.signing import PUBLIC_SIZE, SigningKey, VerifyKey

CHAIN_SCHEMA = 2
GENESIS = "0" * 64
LINE_LABEL = b"callrec audit line v2\x00"
PERSONAL_LABEL = b"callrec audit personal v2\x00"
SIGN_LABEL = b"callrec audit signature v2\x00"
SALT_KEY = "personal_salt"
# Where a line keeps personal data; erasure removes exactly these.
PERSONAL_PATHS: tuple[tuple[str, ...], ...] = (
    ("personal_sealed",),
    ("evidence", "caller"),
    (SALT_KEY,),
)


def canonical(value: Any) -> bytes:
    """The bytes a line is written as: sorted keys, compact, ASCII, no NaN."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"),
                      allow_nan=False, default=str)  # fmt: skip
    return text.encode("ascii")


def split_personal(line: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the line without its personal fields, those fields by dotted path)."""
    core = copy.deepcopy(dict(line))
    personal: dict[str, Any] = {}
    for path in PERSONAL_PATHS:
        parent: Any = core
        for key in path[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent:
            personal[".".join(path)] = parent.pop(path[-1])
    return core, personal


def personal_digest(personal: Mapping[str, Any]) -> str:
    return hashlib.sha256(PERSONAL_LABEL + canonical(dict(personal))).hexdigest()


def line_digest(line: Mapping[str, Any]) -> str:
    """The hex digest the next line's ``prev`` names (personal fields and ``sig`` left out)."""
    core, _personal = split_personal(line)
    core.pop("sig", None)
    return hashlib.sha256(LINE_LABEL + canonical(core)).hexdigest()


@dataclass(frozen=True)
class Head:
    """Where the chain ends: the next line is ``seq + 1`` and names ``digest``."""

    seq: int = 0
    digest: str = GENESIS


def head_of(line: Mapping[str, Any]) -> Head | None:
    """The chain head a parsed line leaves, or None when it is not a chained line."""
    seq = line.get("seq")
    if line.get("schema") != CHAIN_SCHEMA or not isinstance(seq, int) or isinstance(seq, bool):
        return None
    return Head(seq, line_digest(line))


def chain_line(line: dict[str, Any], head: Head, signer: SigningKey | None) -> dict[str, Any]:
    """``line`` (already JSON values) linked after ``head``, salted, and signed."""
    line["schema"] = CHAIN_SCHEMA
    _core, personal = split_personal(line)
    if personal:
        line[SALT_KEY] = secrets.token_hex(16)
        personal[SALT_KEY] = line[SALT_KEY]
    line["personal_digest"] = personal_digest(personal) if personal else None
    line["seq"], line["prev"] = head.seq + 1, head.digest
    if signer is not None:
        line["signer"] = b64(signer.public_key().raw)
        line["sig"] = b64(signer.sign(SIGN_LABEL + bytes.fromhex(line_digest(line))))
    return line


# --- verification ------------------------------------------------------------


@dataclass(frozen=True)
class BadLine:
    number: int  # 1-based line number in the file
    message: str


@dataclass
class ChainReport:
    """What ``callrec audit verify`` found; ``bad`` is the first broken line, if any."""

    chained: int = 0  # lines in the chain
    legacy: int = 0  # unchained (schema 1) lines before the chain started
    signed: int = 0
    erased: int = 0  # lines whose personal fields were removed
    signers: set[str] = field(default_factory=set)  # fingerprints seen
    head: Head = Head()
    bad: BadLine | None = None


def verify_chain(
    lines: Iterable[tuple[int, bytes]], trusted: Collection[bytes] | None = None
) -> ChainReport:
    """Check (line number, raw line) pairs; stops at the first bad line.

    ``trusted``: key ids of the recorders whose signatures count; every
    chained line must then be signed by one of them. None checks each
    signature against the key the line names (the origin is not checked).
    """
    report = ChainReport()
    for number, raw in lines:
        problem = _check(report, raw, trusted)
        if problem:
            report.bad = BadLine(number, problem)
            break
    return report


def _check(report: ChainReport, raw: bytes, trusted: Collection[bytes] | None) -> str:
    try:
        line = json.loads(raw)
    except ValueError:
        return "not valid JSON (a torn write after a crash, or an edit)"
    if not isinstance(line, dict):
        return "not a JSON object"
    if "seq" not in line and line.get("schema") != CHAIN_SCHEMA:
        if report.chained:
            return "an unchained line after the chain started: inserted"
        report.legacy += 1
        return ""
    head = head_of(line)
    if head is None:
        return "seq is not a whole number"
    problem = _link(report.head, line) or _personal(report, line) or _sign(report, line, trusted)
    if not problem:
        report.chained += 1
        report.head = head
    return problem


def _link(last: Head, line: Mapping[str, Any]) -> str:
    seq, expected = line["seq"], last.seq + 1
    where = f"seq {seq} where {expected} was expected"
    if seq > expected:
        return f"{where}: {seq - expected} line(s) before it deleted or moved"
    if seq < expected:
        return f"{where}: moved here or duplicated"
    if line.get("prev") != last.digest:
        before = "the line before it" if last.seq else "the start of the chain"
        return f"prev does not match {before}: that line was edited, or lines were swapped"
    return ""


def _personal(report: ChainReport, line: Mapping[str, Any]) -> str:
    _core, personal = split_personal(line)
    recorded = line.get("personal_digest")
    if not personal:
        if recorded is not None:
            report.erased += 1  # the fields were erased; the chain keeps their hash
        return ""
    if recorded != personal_digest(personal):
        return "personal fields edited (their hash differs from personal_digest)"
    return ""


def _sign(report: ChainReport, line: Mapping[str, Any], trusted: Collection[bytes] | None) -> str:
    if "sig" not in line:
        return "" if trusted is None else "not signed by a trusted recorder (the line is unsigned)"
    key = _key(line.get("signer"))
    signature = _bytes(line.get("sig"))
    if key is None or signature is None:
        return "signer or sig is not valid base64 of the right length"
    if not key.verify(signature, SIGN_LABEL + bytes.fromhex(line_digest(line))):
        return f"signature does not verify: the line was edited (signer {key.fingerprint})"
    if trusted is not None and key.key_id not in trusted:
        return f"not signed by a trusted recorder (signed by {key.fingerprint})"
    report.signed += 1
    report.signers.add(key.fingerprint)
    return ""


def _key(value: object) -> VerifyKey | None:
    raw = _bytes(value)
    return VerifyKey(raw) if raw is not None and len(raw) == PUBLIC_SIZE else None


def _bytes(value: object) -> bytes | None:
    if not isinstance(value, str):
        return None
    try:
        return b64decode_strict(value)
    except ValueError:
        return None
