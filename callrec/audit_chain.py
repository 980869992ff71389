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

Canonical JSON is how lines are written: sorted keys, no spaces, ASCII; a
line must be exactly that (a duplicate key or a reformatted line fails).

Erasure adds an attestation outside the digest (``ERASURE_KEY``), so an
erased line shows who erased it under which order, and a line someone
stripped without one is found::

    line["erasure"] = {"order": erasure order id, "time": ISO 8601 UTC,
                       "signer": ..., "sig": base64 Ed25519(ERASURE_LABEL ||
                       canonical JSON of {"line": digest, "order": ..., "time": ...})}
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
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
ERASURE_LABEL = b"callrec audit erasure v1\x00"
SALT_KEY = "personal_salt"
ERASURE_KEY = "erasure"
# Where a line keeps personal data; erasure removes exactly these.
PERSONAL_PATHS: tuple[tuple[str, ...], ...] = (
    ("personal_sealed",),
    ("evidence", "caller"),
    (SALT_KEY,),
)
# callrec's lines nest four levels deep; a line nested far deeper is no line
# of ours, and would make every recursive step after parsing (copy, dump) fail.
MAX_DEPTH = 32
# What a line cut short by a crash looks like: the start of a line callrec
# writes (an object, printable ASCII), with no end.
_CUT = re.compile(rb"\{[\x20-\x7e]*")
_UNTRUSTED = "not signed by a trusted recorder"


def canonical(value: Any) -> bytes:
    """The bytes a line is written as: sorted keys, compact, ASCII, no NaN."""
    text = json.dumps(value, ensure_ascii=True, sort_keys=True, separators=(",", ":"),
                      allow_nan=False, default=str)  # fmt: skip
    return text.encode("ascii")


def decode_line(raw: bytes) -> dict[str, Any]:
    """One line parsed, if it is what callrec writes: a JSON object, finite numbers, shallow.

    Raises :class:`json.JSONDecodeError` when ``raw`` is not JSON at all (a
    line torn by a crash looks like that), :class:`ValueError` naming what is
    wrong otherwise (NaN or Infinity, nested too deeply, not an object).
    """
    try:
        value = json.loads(raw, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    if _too_deep(value):
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > MAX_DEPTH:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


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
    """The hex digest the next line's ``prev`` names (personal fields, sig, erasure left out)."""
    core, _personal = split_personal(line)
    core.pop("sig", None)
    core.pop(ERASURE_KEY, None)
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
    line.pop(ERASURE_KEY, None)  # outside the digest: only an erasure may add it, later
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


def attest_erasure(
    line: dict[str, Any], order: str | None, time: str, signer: SigningKey | None
) -> dict[str, Any]:
    """``line``, its personal fields already removed, with the erasure's attestation.

    Signed with ``signer`` (the recorder's key) over the line's digest, the
    order and the time, so nobody without the key can pass off stripping a
    line's personal fields as an erasure; without a key it is unsigned, and
    ``audit verify --signer`` names the line.
    """
    attestation: dict[str, Any] = {"order": order, "time": time}
    if signer is not None:
        attestation["signer"] = b64(signer.public_key().raw)
        attestation["sig"] = b64(signer.sign(_erasure_message(line, attestation)))
    line[ERASURE_KEY] = attestation
    return line


def _erasure_message(line: Mapping[str, Any], attestation: Mapping[str, Any]) -> bytes:
    signed = {"line": line_digest(line), "order": attestation.get("order"),
              "time": attestation.get("time")}  # fmt: skip
    return ERASURE_LABEL + canonical(signed)


# --- verification ------------------------------------------------------------


@dataclass(frozen=True)
class BadLine:
    number: int  # 1-based line number in the file; 0: the file as a whole
    message: str


@dataclass
class ChainReport:
    """What ``callrec audit verify`` found; ``bad`` is the first broken line, if any."""

    chained: int = 0  # lines in the chain
    legacy: int = 0  # unchained (schema 1) lines before the chain started
    signed: int = 0
    erased: int = 0  # lines whose personal fields were removed (each attested)
    orders: set[str] = field(default_factory=set)  # erasure orders the attestations name
    torn: list[int] = field(default_factory=list)  # line numbers cut short by a crash
    signers: set[str] = field(default_factory=set)  # fingerprints seen
    head: Head = Head()
    bad: BadLine | None = None


@dataclass(frozen=True)
class _Rules:
    trusted: Collection[bytes] | None
    unchained: int | None  # how many unchained lines may come first; None: any


def verify_chain(
    lines: Iterable[tuple[int, bytes]],
    trusted: Collection[bytes] | None = None,
    *,
    allow_unchained: int | None = None,
) -> ChainReport:
    """Check (line number, raw line) pairs; stops at the first bad line.

    ``trusted``: key ids of the recorders whose signatures count; every
    chained line and erasure must then be signed by one of them, an
    unchained line fails (beyond ``allow_unchained`` of them before the
    chain: a log kept from before callrec chained its lines), and so does a
    log without a chained line. None checks each signature against the key
    the line names (the origin is not checked) and lets any number of
    unchained lines come first unless ``allow_unchained`` says how many.

    A line torn by a crash mid-write is listed in ``torn`` and stepped over,
    as the writer does: the next line must chain to the one before it.
    """
    limit = 0 if allow_unchained is None and trusted is not None else allow_unchained
    rules = _Rules(trusted, limit)
    report = ChainReport()
    for number, raw in lines:
        problem = _check(report, number, raw, rules)
        if problem:
            report.bad = BadLine(number, problem)
            return report
    if trusted is not None and not report.chained:
        report.bad = BadLine(0, "no chained line: nothing in it is signed (a chain stripped?)")
    return report


def _check(report: ChainReport, number: int, raw: bytes, rules: _Rules) -> str:
    body = raw[:-1] if raw.endswith(b"\n") else raw
    try:
        line = decode_line(body)
    except json.JSONDecodeError:
        if _CUT.fullmatch(body):
            report.torn.append(number)
            return ""
        return "not valid JSON, and not a line cut short by a crash: an edit"
    except ValueError as exc:
        return f"not a line callrec writes: {exc}"
    if "seq" not in line and line.get("schema") != CHAIN_SCHEMA:
        return _unchained(report, rules)
    head = head_of(line)
    if head is None:
        return "seq is not a whole number"
    if body != canonical(line):
        return "not written as callrec writes a line (a duplicate key, spacing, key order): edited"
    problem = (
        _link(report.head, line)
        or _personal(report, line, rules.trusted)
        or _sign(report, line, rules.trusted)
    )
    if not problem:
        report.chained += 1
        report.head = head
    return problem


def _unchained(report: ChainReport, rules: _Rules) -> str:
    if report.chained:
        return "an unchained line after the chain started: inserted"
    if rules.unchained is not None and report.legacy >= rules.unchained:
        allowed = f"more than the {rules.unchained} allowed" if rules.unchained else "not allowed"
        return (
            f"an unchained line ({allowed}): nothing proves who wrote it (its chain stripped, "
            "or forged before the chain); --allow-unchained N accepts the N lines a log kept "
            "from before callrec chained them"
        )
    report.legacy += 1
    return ""


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


def _personal(
    report: ChainReport, line: Mapping[str, Any], trusted: Collection[bytes] | None
) -> str:
    _core, personal = split_personal(line)
    recorded = line.get("personal_digest")
    if not personal:
        if recorded is None:
            return ""
        problem = _erasure(report, line, trusted)  # the chain keeps the erased fields' hash
        if not problem:
            report.erased += 1
        return problem
    if recorded != personal_digest(personal):
        return "personal fields edited (their hash differs from personal_digest)"
    return ""


def _erasure(
    report: ChainReport, line: Mapping[str, Any], trusted: Collection[bytes] | None
) -> str:
    attestation = line.get(ERASURE_KEY)
    if not isinstance(attestation, dict):
        return "personal fields removed without an erasure attestation: not erased by callrec"
    order = attestation.get("order")
    if not isinstance(order, str | None) or not isinstance(attestation.get("time"), str):
        return "erasure attestation without a valid order and time"
    if "sig" not in attestation and trusted is not None:
        return f"erasure attestation: {_UNTRUSTED} (unsigned: erased without the recorder's key)"
    problem = _signature(attestation, _erasure_message(line, attestation), trusted)[1]
    if problem:
        return f"erasure attestation: {problem}"
    if order is not None:
        report.orders.add(order)
    return ""


def _sign(report: ChainReport, line: Mapping[str, Any], trusted: Collection[bytes] | None) -> str:
    message = SIGN_LABEL + bytes.fromhex(line_digest(line))
    key, problem = _signature(line, message, trusted)
    if key is not None:
        report.signed += 1
        report.signers.add(key.fingerprint)
    return problem


def _signature(
    holder: Mapping[str, Any], message: bytes, trusted: Collection[bytes] | None
) -> tuple[VerifyKey | None, str]:
    """The key that signed ``holder`` (a line, an attestation), or why it does not count."""
    if "sig" not in holder:
        return None, "" if trusted is None else f"{_UNTRUSTED} (the line is unsigned)"
    key = _key(holder.get("signer"))
    signature = _bytes(holder.get("sig"))
    if key is None or signature is None:
        return None, "signer or sig is not valid base64 of the right length"
    if not key.verify(signature, message):
        return None, f"signature does not verify: the line was edited (signer {key.fingerprint})"
    if trusted is not None and key.key_id not in trusted:
        return None, f"{_UNTRUSTED} (signed by {key.fingerprint})"
    return key, ""


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
