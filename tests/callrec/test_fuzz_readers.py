"""Fuzzing every reader of untrusted input: recordings, inspect, key files, the config.

Mutations of small valid inputs (flipped, overwritten, inserted, deleted and
cut bytes) must end in the documented errors only, and a mutated recording
must never verify as complete. Inputs stay small so each example is cheap;
nothing here measures time (the per-test timeout of setup.cfg catches a hang).
"""

from __future__ import annotations

import contextlib
import functools
import io
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callrec.cli import main
from callrec.config import check_config
from callrec.crypto import frames
from callrec.crypto.frames import FrameParser
from callrec.crypto.keys import PrivateKey, PublicKey, load_pseudonym_key
from callrec.crypto.limits import MAX_RECORDING_SECONDS
from callrec.errors import ConfigError, FormatError, KeyFileError
from callrec.recording import RecordingReader, RecordingWriter, Verdict, verify
from tests.callrec.crafted import forge, frame, nested_metadata
from tests.callrec.test_config import SHIPPED, make_setup

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- mutations --------------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One change at a relative position (0..1) of the input."""

    kind: str  # flip | set | insert | delete | cut
    where: float
    data: bytes


_edits = st.lists(
    st.builds(
        Edit,
        st.sampled_from(["flip", "set", "insert", "delete", "cut"]),
        st.floats(0.0, 1.0),
        st.binary(min_size=1, max_size=64),
    ),
    min_size=1,
    max_size=4,
)


def mutate(data: bytes, edits: list[Edit]) -> bytes:
    out = bytearray(data)
    for edit in edits:
        pos = min(int(edit.where * len(out)), max(len(out) - 1, 0))
        if edit.kind == "flip" and out:
            out[pos] ^= edit.data[0] or 1
        elif edit.kind == "set":
            out[pos : pos + len(edit.data)] = edit.data
        elif edit.kind == "insert":
            out[pos:pos] = edit.data
        elif edit.kind == "delete":
            del out[pos : pos + len(edit.data)]
        elif edit.kind == "cut":
            del out[pos:]
    return bytes(out)


# --- recordings -------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    folder: Path
    key: PrivateKey
    key_path: Path
    recording: bytes


@functools.cache
def sample() -> Sample:
    """A sealed recording of three segments with every frame type, and its key."""
    folder = Path(tempfile.mkdtemp(prefix="callrec-fuzz-"))
    key = PrivateKey.generate()
    key.save(folder / "k.key")
    writer = RecordingWriter.create(folder, [key.public_key()], codec="ulaw", sample_rate=8000)
    writer.write_metadata({"type": "consent", "decision": "implied", "digits": [["2", 1.5]]})
    for i in range(60):
        writer.write_audio(bytes([i]) * 160)
        if i == 20:
            writer.write_gap(160)
            writer.write_pause(1_795_910_401.0)
            writer.write_resume(1_795_910_402.0)
    writer.write_metadata({"type": "summary", "seconds": 1.2})
    info = writer.close()
    assert info.segments == 3
    return Sample(folder, key, folder / "k.key", info.path.read_bytes())


def inspect(path: Path, key: Path | None) -> tuple[int, str]:
    """``callrec inspect PATH [--key KEY]`` in this process: exit code and stderr."""
    argv = ["inspect", str(path), *(["--key", str(key)] if key else [])]
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, err.getvalue()


@FUZZ
@given(_edits)
def test_a_mutated_recording_is_never_complete_and_never_crashes_the_reader(
    edits: list[Edit],
) -> None:
    s = sample()
    data = mutate(s.recording, edits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.crec"
        path.write_bytes(data)
        result = verify(path, [s.key])
        part = path.rename(Path(tmp) / "call.crec.part")
        unsealed = verify(part, [s.key])
    if data == s.recording:
        assert result.verdict is Verdict.COMPLETE
        return
    assert result.verdict is Verdict.INVALID
    assert isinstance(result.error, FormatError)
    # Never sealed: a cut end is a crash (truncated), never a whole recording.
    assert unsealed.verdict is not Verdict.COMPLETE


@FUZZ
@given(_edits, st.booleans())
def test_inspect_of_a_mutated_recording_exits_with_a_verdict_code(
    edits: list[Edit], with_key: bool
) -> None:
    s = sample()
    data = mutate(s.recording, edits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.crec"
        path.write_bytes(data)
        code, err = inspect(path, s.key_path if with_key else None)
    assert code in (0, 4)
    if code:
        assert len(err.splitlines()) == 1
    if with_key and data != s.recording:
        assert code == 4


@functools.cache
def sample_plaintext() -> bytes:
    """The frame stream inside :func:`sample`'s recording."""
    s = sample()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "call.crec"
        path.write_bytes(s.recording)
        with RecordingReader(path, [s.key]) as reader:
            return b"".join(plain for _index, plain in reader.chunks())


_hostile_frames = st.sampled_from(
    [
        frame(frames.GAP, (2**64 - 1).to_bytes(8, "big")),
        frame(frames.PAUSE, b"\xff" * 8),
        frame(frames.RESUME, b"\x7f\xf0" + bytes(6)),
        nested_metadata(5000),
        frame(frames.METADATA, b'{"a":1e400}'),
        frame(frames.METADATA, b"[NaN]"),
        frames.FRAME_HEADER.pack(frames.AUDIO, 1 << 30),
        frames.FRAME_HEADER.pack(frames.METADATA, 1 << 24),
        frames.FRAME_HEADER.pack(0x07, 3) + b"abc",
    ]
)


@FUZZ
@given(_edits, st.lists(st.tuples(st.floats(0.0, 1.0), _hostile_frames), max_size=2))
def test_any_frame_stream_sealed_with_a_public_key_is_read_or_refused_cleanly(
    edits: list[Edit], inserts: list[tuple[float, bytes]]
) -> None:
    s = sample()
    plain = bytearray(mutate(sample_plaintext(), edits))
    for where, hostile in inserts:
        at = int(where * len(plain))
        plain[at:at] = hostile
    with tempfile.TemporaryDirectory() as tmp:
        path = forge(Path(tmp) / "forged.crec", s.key.public_key(), bytes(plain))
        result = verify(path, [s.key])
        code, err = inspect(path, s.key_path)
    assert result.verdict in (Verdict.COMPLETE, Verdict.INVALID)
    assert code == (0 if result.verdict is Verdict.COMPLETE else 4)
    assert result.audio_seconds <= MAX_RECORDING_SECONDS
    if result.verdict is Verdict.INVALID:
        assert result.error is not None and result.error.segment is not None
    assert "Traceback" not in err


@FUZZ
@given(st.binary(max_size=600), st.lists(st.integers(1, 97), min_size=1, max_size=8))
def test_any_plaintext_frames_parse_or_raise_a_format_error(data: bytes, cuts: list[int]) -> None:
    parser, pos, i = FrameParser(), 0, 0
    error: FormatError | None = None
    try:
        while pos < len(data):
            step = cuts[i % len(cuts)]
            list(parser.feed(data[pos : pos + step], i))
            pos, i = pos + step, i + 1
        parser.finish(i)
    except FormatError as exc:
        error = exc
    assert error is None or error.segment is not None
    assert parser.pending <= len(data)


# --- key files --------------------------------------------------------------------

_PRIVATE = PrivateKey.generate().to_bytes()
_PROTECTED = PrivateKey.generate(pq=True).to_bytes(b"pw")
_PUBLIC = PrivateKey.generate(pq=True).public_key().to_text().encode()


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([_PRIVATE, _PROTECTED, _PUBLIC, bytes(range(32))]), _edits)
def test_a_mutated_key_file_loads_or_is_refused_with_a_key_file_error(
    original: bytes, edits: list[Edit]
) -> None:
    data = mutate(original, edits)
    # No passphrase: a protected key is refused before scrypt runs, so every
    # example stays cheap; scrypt's own bounds are pinned in test_crafted_inputs.
    private = _refusal(lambda: PrivateKey.from_bytes(data, "fuzz.key"))
    public = _refusal(lambda: PublicKey.from_text(data.decode("utf-8", "replace"), "fuzz.pub"))
    assert private is None or (private.path, bool(private.message)) == ("fuzz.key", True)
    assert public is None or (public.path, bool(public.message)) == ("fuzz.pub", True)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pseudonym.key"
        path.write_bytes(data)
        pseudonym = _refusal(lambda: load_pseudonym_key(path))
    assert pseudonym is None or pseudonym.path == str(path)


def _refusal(load: Callable[[], object]) -> KeyFileError | None:
    """The KeyFileError ``load`` raises, or None when it loads; anything else escapes."""
    try:
        load()
    except KeyFileError as exc:
        return exc
    return None


# --- the config -------------------------------------------------------------------

_HOSTILE_VALUES = st.sampled_from(
    [
        "1" + "0" * 400,
        "1" + "0" * 5000,
        "[" * 2000 + "]" * 2000,
        "{a=" * 2000 + "1" + "}" * 2000,
        '"\\u0000"',
        '"~nosuchuser/x"',
        '"' + "x" * 5000 + '"',
        "nan",
        "-inf",
        '"http://h:99999"',
        "1979-05-27T07:32:00Z",
        "[1, 'a', {b = 2}]",
    ]
)


@functools.cache
def config_files() -> tuple[Path, bytes]:
    """Real files for the shipped config's paths, and the config text naming them."""
    root = Path(tempfile.mkdtemp(prefix="callrec-fuzz-config-"))
    text = SHIPPED.read_text()
    for example, real in make_setup(root).items():
        text = text.replace(f'"{example}"', f'"{real}"')
    return root, text.replace('password = ""', 'password = "x"').encode()


@settings(max_examples=150, deadline=None)
@given(_edits, st.none() | st.tuples(st.integers(0, 200), _HOSTILE_VALUES))
def test_a_mutated_config_gives_a_list_of_problems_never_a_traceback(
    edits: list[Edit], hostile: tuple[int, str] | None
) -> None:
    _root, text = config_files()
    if hostile is not None:  # one value replaced by something that once crashed the loader
        lines = text.decode().splitlines()
        values = [i for i, line in enumerate(lines) if " = " in line and not line.startswith("#")]
        at = values[hostile[0] % len(values)]
        lines[at] = lines[at].split(" = ", 1)[0] + " = " + hostile[1]
        text = "\n".join(lines).encode()
    data = mutate(text, edits)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "callrec.toml"
        path.write_bytes(data)
        problems = check_config(path, env={})
    assert all(isinstance(p, ConfigError) and p.message for p in problems)
    assert all("\n" not in p.key for p in problems)
