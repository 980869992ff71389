"""Shared pieces of the CLI tests: run the command in-process, make keys and audio."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from callrec.audio import Int16Array
from callrec.cli import main

# The installed console script, to check what reaches a shell.
CALLREC = Path(sys.executable).with_name("callrec")


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str


def run(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> Run:
    """``callrec ARGV`` in this process: exit code, stdout, stderr."""
    capsys.readouterr()
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return Run(code, captured.out, captured.err)


_SPY = """\
# Written by the callrec tests: on exit, list every module this process imported.
import atexit, os, sys

def _report():
    with open(os.environ["CALLREC_TEST_MODULES"], "w") as f:
        f.write("\\n".join(sorted(sys.modules)))

atexit.register(_report)
"""


@dataclass(frozen=True)
class ModuleSpy:
    """Makes a child Python write the names of the modules it imported when it exits.

    ``site`` imports a ``sitecustomize`` module found on ``$PYTHONPATH`` at
    start-up; this one registers the report. Unlike ``-X importtime`` it
    also sees modules loaded with ``importlib.import_module``.
    """

    folder: Path

    @classmethod
    def install(cls, folder: Path) -> ModuleSpy:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "sitecustomize.py").write_text(_SPY)
        return cls(folder)

    @property
    def env(self) -> dict[str, str]:
        path = os.pathsep.join(filter(None, [str(self.folder), os.environ.get("PYTHONPATH")]))
        return {"PYTHONPATH": path, "CALLREC_TEST_MODULES": str(self.folder / "modules.txt")}

    def modules(self) -> frozenset[str]:
        return frozenset((self.folder / "modules.txt").read_text().split())


def loaded(modules: frozenset[str], package: str) -> bool:
    """Whether ``package`` or any module in it is among ``modules``."""
    return any(m == package or m.startswith(package + ".") for m in modules)


@dataclass(frozen=True)
class Child:
    """``callrec`` run in a fresh interpreter: exit code, output, the modules it imported."""

    code: int
    out: str
    err: str
    modules: frozenset[str]

    def loaded(self, package: str) -> bool:
        return loaded(self.modules, package)


def run_child(spy: ModuleSpy, *argv: str | Path, env: Mapping[str, str] | None = None) -> Child:
    """``python -m callrec ARGV`` in a fresh interpreter, watched by ``spy``."""
    proc = subprocess.run(
        [sys.executable, "-m", "callrec", *map(str, argv)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={**os.environ, **spy.env, **(env or {})},
    )
    return Child(proc.returncode, proc.stdout, proc.stderr, spy.modules())


@dataclass(frozen=True)
class KeyPair:
    pub: Path
    key: Path


def make_keys(capsys: pytest.CaptureFixture[str], folder: Path, name: str = "callrec") -> KeyPair:
    result = run(capsys, "keygen", "--out", folder, "--name", name)
    assert result.code == 0, result.err
    return KeyPair(folder / f"{name}.pub", folder / f"{name}.key")


def sealed_recording(
    folder: Path, name: str, keys: KeyPair, seconds: float = 1.0, seed: int = 1
) -> Path:
    """``folder/NAME.crec``: ``seconds`` of speech-like G.711 audio sealed to ``keys``."""
    from callrec.crypto.keys import PublicKey
    from callrec.media.g711 import ulaw_encode
    from callrec.recording import Codec, RecordingWriter

    folder.mkdir(parents=True, exist_ok=True)
    writer = RecordingWriter.create(
        folder, [PublicKey.load(keys.pub)], codec=Codec.ULAW, sample_rate=8000
    )
    writer.write_audio(ulaw_encode(speech_like(8000, seconds, seed=seed)))
    return writer.close(final_path=folder / f"{name}.crec").path


def speech_like(rate: int, seconds: float, channels: int = 1, seed: int = 1) -> Int16Array:
    """Noise under a slowly varying loudness contour: full 16-bit range, easy to compare."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    contour = 0.5 + 0.5 * np.sin(2 * np.pi * 1.3 * t) * np.sin(2 * np.pi * 0.37 * t + 1)
    mono = contour * rng.normal(0, 8000, n)
    if channels == 1:
        return np.clip(mono, -32768, 32767).astype(np.int16)
    cols = [np.roll(mono, 31 * c) * (1 - 0.2 * c) for c in range(channels)]
    return np.clip(np.stack(cols, axis=1), -32768, 32767).astype(np.int16)


def damaged_copies(good: Path, folder: Path, *, cut: int, flip: int) -> tuple[Path, Path]:
    """``cut.crec.part`` (a crash: the last ``cut`` bytes missing) and ``bad.crec``
    (the byte at offset ``flip`` altered) made from the sealed recording ``good``."""
    data = good.read_bytes()
    crashed = folder / "cut.crec.part"
    crashed.write_bytes(data[:-cut])
    edited = bytearray(data)
    edited[flip] ^= 0x01
    bad = folder / "bad.crec"
    bad.write_bytes(bytes(edited))
    return crashed, bad
