"""Small HPKE-sealed blobs for the audit log (caller number, name).

Same recipients and the same stanza code as recordings (:meth:`PublicKey.wrap`),
so whoever can open a recording can open its audit line and nobody on the PBX
can. The JSON shape is pinned in docs/FORMAT.md::

    {"v": 1,
     "recipients": [{"kem": "x25519", "key_id": "<fingerprint>", "wrapped": "<base64>"}],
     "ciphertext": "<base64 AES-256-GCM(data key, zero nonce, plaintext, aad=context)>"}

HPKE info binds SHA-256(context) and the key id, so a blob moved to another
context (another audit field or call) does not open.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callrec.crypto.keys import (
    DATA_KEY_SIZE,
    ZERO_NONCE,
    PrivateKey,
    PublicKey,
    b64,
    b64decode_strict,
    unique_keys,
)
from callrec.errors import FormatError, NoMatchingKeyError, RecordingUnavailable

ENVELOPE_VERSION = 1
WRAP_LABEL = b"callrec v1 envelope"


def seal_for(
    recipients: Sequence[PublicKey], plaintext: bytes, context: bytes
) -> dict[str, object]:
    """Encrypt ``plaintext`` for every recipient; the result is JSON-serialisable."""
    if not recipients:
        raise RecordingUnavailable("no recipient public key")
    data_key = os.urandom(DATA_KEY_SIZE)
    binding = hashlib.sha256(context).digest()
    stanzas: list[dict[str, str]] = [
        {
            "kem": pub.kem,
            "key_id": pub.fingerprint,
            "wrapped": b64(pub.wrap(data_key, WRAP_LABEL, binding)),
        }
        for pub in unique_keys(recipients)
    ]
    sealed = AESGCM(data_key).encrypt(ZERO_NONCE, plaintext, context)
    return {"v": ENVELOPE_VERSION, "recipients": stanzas, "ciphertext": b64(sealed)}


def open_sealed(obj: Mapping[str, object], keys: Sequence[PrivateKey], context: bytes) -> bytes:
    """The plaintext; ``NoMatchingKeyError`` or ``FormatError`` naming the bad field."""
    if obj.get("v") != ENVELOPE_VERSION:
        raise FormatError(f"unsupported envelope version {obj.get('v')!r}", field="v")
    stanzas = obj.get("recipients")
    if not isinstance(stanzas, list) or not stanzas:
        raise FormatError("no recipients", field="recipients")
    sealed = _b64decode(obj.get("ciphertext"), "ciphertext")
    binding = hashlib.sha256(context).digest()
    by_fp = {key.fingerprint: key for key in keys}
    for i, stanza in enumerate(stanzas):
        where = f"recipients[{i}]"
        if not isinstance(stanza, dict):
            raise FormatError("not an object", field=where)
        key = by_fp.get(str(stanza.get("key_id")))
        if key is None or stanza.get("kem") != key.kem:
            continue
        wrapped = _b64decode(stanza.get("wrapped"), where + ".wrapped")
        data_key = key.unwrap(
            wrapped, WRAP_LABEL, binding, where, "wrong context, or the stanza was edited or moved"
        )
        try:
            return AESGCM(data_key).decrypt(ZERO_NONCE, sealed, context)
        except InvalidTag:
            raise FormatError("does not open: ciphertext edited", field="ciphertext") from None
    listed = ", ".join(str(s.get("key_id")) for s in stanzas if isinstance(s, dict))
    raise NoMatchingKeyError(f"none of the given keys is a recipient; recipients: {listed}")


def _b64decode(value: object, field: str) -> bytes:
    if not isinstance(value, str):
        raise FormatError("missing or not a string", field=field)
    try:
        return b64decode_strict(value)
    except ValueError:
        raise FormatError("not valid base64", field=field) from None
