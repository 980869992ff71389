"""Issue 11's crafted inputs through the real CLI: one clear line and exit 4, 3 or 1.

Each recording is made with a recipient's public key only (tests/callrec/
crafted.py), as anyone on a PBX could. None may end in a traceback, a hang,
or output larger than the audio the file holds; a refused decrypt leaves no
file behind.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from callrec.crypto import stream
from callrec.crypto.keys import PrivateKey
from callrec.crypto.limits import DIAGNOSE_DISTANCE, MAX_KEY_FILE
from callrec.recording import Verdict, verify
from tests.callrec.cli_support import KeyPair, make_keys, run
from tests.callrec.crafted import CORPUS, Crafted, audio, forge
from tests.callrec.test_config import shipped_in

CORPUS_IDS = [case.name for case in CORPUS]


@pytest.fixture
def keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> KeyPair:
    return make_keys(capsys, tmp_path / "keys")


def crafted(case: Crafted, tmp_path: Path, keys: KeyPair) -> Path:
    folder = tmp_path / "crafted"
    folder.mkdir(exist_ok=True)
    return case.make(folder, PrivateKey.load(keys.key).public_key())


@pytest.mark.parametrize("case", CORPUS, ids=CORPUS_IDS)
def test_verify_names_what_is_wrong_and_exits_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, case: Crafted
) -> None:
    path = crafted(case, tmp_path, keys)
    result = run(capsys, "verify", path, "--key", keys.key)
    assert result.code == 4
    [row] = [line for line in result.out.splitlines() if line.startswith(str(path))]
    assert " invalid " in row
    assert case.error in row
    assert result.err == ""


@pytest.mark.parametrize("case", CORPUS, ids=CORPUS_IDS)
def test_decrypt_is_one_line_exit_4_and_no_more_audio_than_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair, case: Crafted
) -> None:
    path = crafted(case, tmp_path, keys)
    out = tmp_path / "out" / "call.wav"
    out.parent.mkdir()
    result = run(capsys, "decrypt", path, "--key", keys.key, "-o", out)
    assert result.code == 4
    [line] = result.err.splitlines()
    assert line.startswith(f"callrec decrypt: {path}: ")
    assert case.error in line
    # Header and length problems write nothing; damage inside the stream
    # keeps only what came before it (at most the 160 samples of audio()).
    files = sorted(p.name for p in out.parent.iterdir())
    assert files in ([], ["call.json", "call.wav"])
    if files:
        assert (out.parent / "call.wav").stat().st_size <= 44 + 2 * 255 * 4


@pytest.mark.parametrize(
    "case", [c for c in CORPUS if c.name.startswith("created")], ids=lambda c: c.name
)
@pytest.mark.parametrize("with_key", [False, True], ids=["no-key", "key"])
def test_inspect_of_a_date_no_calendar_holds_is_one_line_exit_4(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: KeyPair,
    case: Crafted,
    with_key: bool,
) -> None:
    path = crafted(case, tmp_path, keys)
    key_args: list[str | Path] = ["--key", keys.key] if with_key else []
    result = run(capsys, "inspect", path, *key_args)
    assert result.code == 4
    [line] = result.err.splitlines()
    assert line.startswith(f"callrec inspect: {path}: {case.error} (")
    assert line.endswith(" s since 1970)")
    assert result.out == ""


def test_a_crash_cut_of_a_crafted_file_is_still_truncated_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    gap = next(c for c in CORPUS if c.name == "gaps-add-up")
    data = crafted(gap, tmp_path, keys).read_bytes()
    part = tmp_path / "crashed.crec.part"
    part.write_bytes(data[:-5])
    result = run(capsys, "verify", part, "--key", keys.key)
    assert result.code == 3
    assert "truncated" in result.out


def test_sparse_file_diagnosis_is_bounded_by_the_segments_near_the_failure(
    tmp_path: Path, keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pub = PrivateKey.load(keys.key).public_key()
    path = forge(tmp_path / "sparse.crec", pub, audio(50_000))
    data = bytearray(path.read_bytes())
    data[300] ^= 0x01  # inside segment 0's ciphertext
    path.write_bytes(bytes(data))
    os.truncate(path, 8 << 30)  # 8 GiB, nearly all of it a hole
    tries: list[int] = []
    real = stream.SegmentCipher.decrypt

    def counted(
        self: stream.SegmentCipher, index: int, ciphertext: bytes | memoryview, last: bool
    ) -> bytes | None:
        tries.append(index)
        return real(self, index, ciphertext, last)

    monkeypatch.setattr(stream.SegmentCipher, "decrypt", counted)
    result = verify(path, [PrivateKey.load(keys.key)])
    assert result.verdict is Verdict.INVALID
    assert result.error is not None
    assert str(result.error) == (
        "segment 0: authentication failed (corrupted, cut, or spliced from another recording)"
    )
    assert max(tries) <= DIAGNOSE_DISTANCE
    assert len(tries) <= 2 * (DIAGNOSE_DISTANCE + 1)


# --- key files ----------------------------------------------------------------------


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "key.fifo"
    os.mkfifo(path)
    return path


def _folder(tmp_path: Path) -> Path:
    path = tmp_path / "keydir"
    path.mkdir()
    return path


def _huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge.key"
    path.write_bytes(b"callrec-private-key-v1 x25519 " + b"A" * MAX_KEY_FILE)
    return path


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda _tmp: Path("/dev/zero"), "is a device, not a regular file"),
        (_fifo, "is a FIFO, not a regular file"),
        (_folder, "is a directory, not a file"),
        (_huge, f"larger than {MAX_KEY_FILE} bytes"),
    ],
    ids=["dev-zero", "fifo", "directory", "huge"],
)
def test_a_key_that_is_not_a_small_regular_file_is_one_line_exit_1(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: KeyPair,
    make: Callable[[Path], Path],
    reason: str,
) -> None:
    key = make(tmp_path)
    recording = forge(tmp_path / "r.crec", PrivateKey.load(keys.key).public_key(), audio())
    result = run(capsys, "verify", recording, "--key", key)
    assert result.code == 1
    assert result.err.splitlines() == [f"callrec verify: {key}: cannot read private key: {reason}"]


def test_a_protected_key_costing_more_than_a_second_is_refused_before_scrypt_runs(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    keys: KeyPair,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    protected = tmp_path / "max.key"
    PrivateKey.generate().save(protected, b"right")
    fields = protected.read_text().split()
    fields[3:6] = ["20", "32", "16"]  # the old documented maximum: a minute and 1.2 GB
    protected.write_text(" ".join(fields) + "\n")
    monkeypatch.setenv("CALLREC_KEY_PASSPHRASE", "wrong")
    recording = forge(tmp_path / "r.crec", PrivateKey.load(keys.key).public_key(), audio())
    result = run(capsys, "verify", recording, "--key", protected)
    assert result.code == 1
    assert result.err.splitlines() == [
        f"callrec verify: {protected}: scrypt parameters out of range: 20 32 16 cost "
        "N·r·p = 536,870,912; callrec accepts at most 2,097,152 (about a second on a laptop)"
    ]


# --- config files -------------------------------------------------------------------


def _edited_config(tmp_path: Path, key: str, value: str) -> Path:
    """The shipped config with real files under ``tmp_path``, one ``key = value`` line replaced."""
    path = shipped_in(tmp_path)
    text, count = re.subn(
        rf"(?m)^{re.escape(key)} = .*$", lambda _m: f"{key} = {value}", path.read_text(), count=1
    )
    assert count == 1, key
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("grace", "1" + "0" * 310, "consent.grace: must be a finite number, not one this large"),
        ("grace", "1" + "0" * 310 + ".5", "consent.grace: must be a finite number, not inf"),
        ("grace", "1" + "0" * 5000, "(syntax): a number has more digits than callrec reads"),
        ("level", "[" * 3000 + "]" * 3000, "(syntax): arrays or tables nested too deeply"),
        ("level", "{a=" * 3000 + "1" + "}" * 3000, "(syntax): arrays or tables nested too deeply"),
        ("spool", '"~nosuchuser/x"', "recording.spool: ~nosuchuser: no such user"),
        ("spool", '"sp\\u0000ool"', "recording.spool: contains a NUL byte"),
        ("audit_log", '"a\\u0000.log"', "privacy.audit_log: contains a NUL byte"),
        (
            "spool",
            '"' + "a" * 5000 + '"',
            "recording.spool: is 5000 bytes long; a path has at most 4095",
        ),
        ("url", '"http://127.0.0.1:99999"', "ari.url: has a port outside 1..65535"),
    ],
    ids=[
        "int-310-digits",
        "float-310-digits",
        "int-5000-digits",
        "nested-arrays",
        "nested-tables",
        "unknown-user",
        "nul-in-spool",
        "nul-in-audit-log",
        "path-5000-chars",
        "port-99999",
    ],
)
def test_check_config_names_the_key_instead_of_a_traceback_or_ok(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str, problem: str
) -> None:
    path = _edited_config(tmp_path, key, value)
    result = run(capsys, "check-config", path)
    assert result.code == 1
    assert any(line.startswith(f"{path}:{problem}") for line in result.out.splitlines()), (
        result.out
    )
    assert "ok" not in result.out.splitlines()
    assert result.err == ""


def test_check_config_refuses_a_world_readable_pseudonym_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = shipped_in(tmp_path)
    assert run(capsys, "check-config", path).out == "ok\n"
    key = tmp_path / "keys" / "pseudonym.key"
    key.chmod(0o644)
    result = run(capsys, "check-config", path)
    assert result.code == 1
    assert result.out.splitlines() == [
        f"{path}:privacy.pseudonym_key: {key}: other users can read or write it (mode 0644) "
        f"(hint: chmod 600 {key} (or 640 for the group of the callrec user))"
    ]
    key.chmod(0o640)  # the AGI script's group may read it
    assert run(capsys, "check-config", path).out == "ok\n"


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (_folder, "is a directory, not a file"),
        (lambda _tmp: Path("/dev/zero"), "is a device, not a regular file"),
        (_fifo, "is a FIFO, not a regular file"),
    ],
    ids=["directory", "dev-zero", "fifo"],
)
def test_check_config_says_what_a_recipient_key_path_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Callable[[Path], Path], what: str
) -> None:
    odd = make(tmp_path)
    path = _edited_config(tmp_path, "recipients", f'["{odd}"]')
    result = run(capsys, "check-config", path)
    assert result.code == 1
    assert result.out.splitlines() == [
        f"{path}:recording.recipients[0]: {odd} {what} "
        "(hint: name the .pub file written by `callrec keygen`)"
    ]


@pytest.mark.parametrize("odd", ["/dev/zero", "folder"])
def test_check_config_of_a_config_that_is_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], odd: str
) -> None:
    path = Path(odd)
    if odd == "folder":
        path = tmp_path / odd
        path.mkdir()
    result = run(capsys, "check-config", path)
    assert result.code == 1
    [line] = result.out.splitlines()
    assert line.startswith(f"{path}:(file): cannot read: is a ")


def test_audio_the_output_format_cannot_hold_is_one_line_exit_1_and_leaves_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], keys: KeyPair
) -> None:
    # 255 channels at 768 kHz is a valid recording; FLAC holds at most 8 channels.
    pub = PrivateKey.load(keys.key).public_key()
    path = forge(
        tmp_path / "wide.crec", pub, audio(255 * 2 * 10), channels=255, sample_rate=768_000
    )
    out = tmp_path / "out" / "wide.flac"
    out.parent.mkdir()
    result = run(capsys, "decrypt", path, "--key", keys.key, "-o", out)
    assert result.code == 1
    [line] = result.err.splitlines()
    assert line.startswith(f"callrec decrypt: {path}: {out}: cannot write audio: ")
    assert list(out.parent.iterdir()) == []
    wav = out.with_suffix(".wav")
    assert run(capsys, "decrypt", path, "--key", keys.key, "-o", wav).code == 0
    assert wav.stat().st_size == 44 + 255 * 2 * 10 * 2
