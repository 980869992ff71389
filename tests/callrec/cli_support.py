"""Shared pieces of the CLI tests: run the command in-process, make keys and audio."""

from __future__ import annotations

import sys
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


@dataclass(frozen=True)
class KeyPair:
    pub: Path
    key: Path


def make_keys(capsys: pytest.CaptureFixture[str], folder: Path, name: str = "callrec") -> KeyPair:
    result = run(capsys, "keygen", "--out", folder, "--name", name)
    assert result.code == 0, result.err
    return KeyPair(folder / f"{name}.pub", folder / f"{name}.key")


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
