"""HPKE-sealed blobs for the audit log: one per call field, openable by every recipient."""

from __future__ import annotations

import base64
import json

import pytest

from callrec.crypto.envelope import open_sealed, seal_for
from callrec.crypto.keys import PrivateKey
from callrec.errors import FormatError, NoMatchingKeyError, RecordingUnavailable

DPO = PrivateKey.generate()
ARCHIVE = PrivateKey.generate(pq=True)
STRANGER = PrivateKey.generate()
CONTEXT = b"call 1732800000.17/caller_number"


def _sealed() -> dict[str, object]:
    obj = seal_for([DPO.public_key(), ARCHIVE.public_key()], b"+4930123456", CONTEXT)
    result: dict[str, object] = json.loads(json.dumps(obj))  # must survive JSON Lines
    return result


def test_every_recipient_opens() -> None:
    obj = _sealed()
    assert obj["v"] == 1
    stanzas = obj["recipients"]
    assert isinstance(stanzas, list)
    assert [(s["kem"], s["key_id"]) for s in stanzas] == [
        ("x25519", DPO.fingerprint),
        ("mlkem768-x25519", ARCHIVE.fingerprint),
    ]
    assert b"4930123456" not in json.dumps(obj).encode()
    for key in (DPO, ARCHIVE):
        assert open_sealed(obj, [STRANGER, key], CONTEXT) == b"+4930123456"


def test_other_context_does_not_open() -> None:
    with pytest.raises(FormatError) as info:
        open_sealed(_sealed(), [DPO], b"call 2/caller_number")
    assert info.value.field == "recipients[0]"
    assert "wrong context" in info.value.message


def test_no_matching_key() -> None:
    with pytest.raises(NoMatchingKeyError, match=DPO.fingerprint):
        open_sealed(_sealed(), [STRANGER], CONTEXT)


def test_edited_ciphertext() -> None:
    obj = _sealed()
    raw = bytearray(base64.b64decode(str(obj["ciphertext"])))
    raw[0] ^= 1
    obj["ciphertext"] = base64.b64encode(bytes(raw)).decode()
    with pytest.raises(FormatError, match="ciphertext edited") as info:
        open_sealed(obj, [DPO], CONTEXT)
    assert info.value.field == "ciphertext"


def test_wrapped_key_of_wrong_length() -> None:
    obj = _sealed()
    stanzas = obj["recipients"]
    assert isinstance(stanzas, list)
    stanzas[0]["wrapped"] = base64.b64encode(b"\x00" * 81).decode()
    with pytest.raises(FormatError, match="wrapped key is 81 bytes, expected 80 for x25519"):
        open_sealed(obj, [DPO], CONTEXT)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ({"v": 2}, "v"),
        ({"recipients": []}, "recipients"),
        ({"recipients": "x"}, "recipients"),
        ({"ciphertext": 5}, "ciphertext"),
        ({"ciphertext": "%%%"}, "ciphertext"),
        ({"recipients": ["x"]}, "recipients[0]"),
    ],
)
def test_malformed_objects(edit: dict[str, object], field: str) -> None:
    obj = {**_sealed(), **edit}
    with pytest.raises(FormatError) as info:
        open_sealed(obj, [DPO], CONTEXT)
    assert info.value.field == field


def test_no_recipients() -> None:
    with pytest.raises(RecordingUnavailable, match="no recipient public key"):
        seal_for([], b"x", CONTEXT)
