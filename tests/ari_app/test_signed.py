"""A recorder with ``[recording] signing_key``: signed recordings and a signed audit chain,
end to end through the simulator; an unusable key stops recording instead of signing nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from callrec.ari.sim import CallerScenario
from callrec.audit_chain import verify_chain
from callrec.crypto.signing import SigningKey
from callrec.recording import verify
from callrec.recording.origin import Signature
from tests.ari_app.conftest import DISCLOSURE, GRACE, Rig
from tests.callrec.cli_support import run


def _sign_with(rig: Rig, key_path: Path) -> None:
    """Point the rig's config at ``key_path`` as the recorder's signing key."""
    text = rig.config_path.read_text()
    rig.config_path.write_text(
        text.replace("[recording]\n", f'[recording]\nsigning_key = "{key_path}"\n', 1)
    )


def _call(rig: Rig, number: str = "+4930123456") -> str:
    return rig.sim.place_call(
        CallerScenario(
            exten="100",
            caller_number=number,
            audio=rig.voice_path,
            hangup_after=DISCLOSURE + GRACE + 2.0,
        )
    )


async def test_the_recorder_signs_its_recordings_and_audit_lines(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    key = SigningKey.generate()
    key_path, pub_path = rig.out / "pbx1.sign.key", rig.out / "pbx1.sign.pub"
    key.save(key_path)
    pub_path.write_text(key.public_key().to_text())
    _sign_with(rig, key_path)
    await rig.start_app()

    lines = [await rig.wait_audit(_call(rig, f"+49301234{i}")) for i in range(2)]
    trusted = {key.public_key().key_id}
    for line in lines:
        assert (line["event"], line["recording_signer"]) == ("call", key.fingerprint)
        result = verify(Path(line["path"]), rig.keys)
        assert str(result.verdict) == "complete"
        assert result.origin is not None
        assert result.origin.signature is Signature.SIGNED
        assert result.origin.trusted(trusted)

    with rig.audit_path.open("rb") as f:
        report = verify_chain(enumerate(f, 1), trusted)
    assert report.bad is None
    assert report.chained == report.signed == len(rig.audit())

    # What the DPO runs, with the recorder's public key.
    key_file = rig.out / "demo.key"
    paths = [line["path"] for line in lines]
    checked = run(capsys, "verify", *paths, "--key", key_file, "--signer", pub_path)
    assert checked.code == 0, checked.out
    assert checked.out.count(f"trusted:{key.fingerprint}") == 2
    audited = run(capsys, "audit", "verify", rig.audit_path, "--signer", pub_path)
    assert audited.code == 0, audited.out


async def test_a_signing_key_unusable_at_start_stops_recording(rig: Rig) -> None:
    # check-config (run by the loader) refuses an unusable key; one that breaks
    # between loading and starting must not leave recordings silently unsigned.
    key_path = rig.out / "pbx1.sign.key"
    SigningKey.generate().save(key_path)
    _sign_with(rig, key_path)
    config = rig.config
    key_path.write_text("not a key\n")
    await rig.start_app(config)
    line = await rig.wait_audit(_call(rig))
    assert line["recording_id"] is None
    assert f"signing key {key_path} unusable" in line["reason"]
    assert rig.sealed() == []
