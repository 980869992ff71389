"""Sealed-recording throughput as ratios to bare AES-GCM measured in the same run.

Targets (issue 2): writer with 160-byte writes >= 50 % of bare 160-byte
``AESGCM.encrypt`` calls; writer with 64 KiB writes into tmpfs >= 30 % of bare
AES-GCM over 4080-byte pieces; reader >= 30 % of bare segmented decryption.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from callrec.crypto.keys import PrivateKey
from callrec.recording import RecordingReader, RecordingWriter

SMALL = 160
BIG = 64 * 1024
SEGMENT = 4080
TOTAL = 64 * 1024 * 1024  # bytes per run
REPEATS = 5


def best_rate(fn: Callable[[], int]) -> float:
    """Best of REPEATS runs, in bytes per second (fn returns bytes processed)."""
    best = 0.0
    for _ in range(REPEATS):
        start = time.perf_counter()
        done = fn()
        best = max(best, done / (time.perf_counter() - start))
    return best


def bare_small() -> int:
    aead, nonce, data = AESGCM(os.urandom(32)), os.urandom(12), os.urandom(SMALL)
    n = TOTAL // 8 // SMALL
    for _ in range(n):
        aead.encrypt(nonce, data, None)
    return n * SMALL


def bare_segments(encrypt: bool) -> Callable[[], int]:
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    plain = os.urandom(SEGMENT)
    sealed = aead.encrypt(nonce, plain, None)

    def run() -> int:
        n = TOTAL // SEGMENT
        if encrypt:
            for _ in range(n):
                aead.encrypt(nonce, plain, None)
        else:
            for _ in range(n):
                aead.decrypt(nonce, sealed, None)
        return n * SEGMENT

    return run


def writer(folder: Path, key: PrivateKey, size: int, audio: bool) -> Callable[[], int]:
    payload = os.urandom(size)

    def run() -> int:
        w = RecordingWriter.create(folder, [key.public_key()], codec="ulaw", sample_rate=8000)
        n = (TOTAL // 8 if size == SMALL else TOTAL) // size
        put = w.write_audio if audio else w.write
        for _ in range(n):
            put(payload)
        info = w.close()
        info.path.unlink()
        return n * size

    return run


def reader(path: Path, key: PrivateKey, frames: bool) -> Callable[[], int]:
    def run() -> int:
        total = 0
        with RecordingReader(path, [key]) as r:
            if frames:
                for _frame in r.frames():
                    total += 1
                total = path.stat().st_size
            else:
                for _index, plaintext in r.chunks():
                    total += len(plaintext)
            assert r.verdict == "complete", r.error
        return total

    return run


def main() -> int:
    shm = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="callrec-bench-", dir=shm))
    key = PrivateKey.generate()
    try:
        return report(folder, key)
    finally:
        shutil.rmtree(folder)


def report(folder: Path, key: PrivateKey) -> int:
    rows: list[tuple[str, float, float, float]] = []
    base_small = best_rate(bare_small)
    base_enc = best_rate(bare_segments(encrypt=True))
    base_dec = best_rate(bare_segments(encrypt=False))
    rows.append(
        ("writer write_audio(160 B)", best_rate(writer(folder, key, SMALL, True)), base_small, 0.5)
    )
    rows.append(
        ("writer write(160 B)", best_rate(writer(folder, key, SMALL, False)), base_small, 0.5)
    )
    rows.append(
        (
            "writer write(64 KiB) to tmpfs",
            best_rate(writer(folder, key, BIG, False)),
            base_enc,
            0.3,
        )
    )
    sample = folder / "sample.crec"
    w = RecordingWriter.create(folder, [key.public_key()], codec="ulaw", sample_rate=8000)
    chunk = os.urandom(BIG)
    for _ in range(TOTAL // BIG):
        w.write(chunk)
    w.close(sample)
    rows.append(
        (
            "reader chunks() (verified segments)",
            best_rate(reader(sample, key, False)),
            base_dec,
            0.3,
        )
    )
    small = folder / "small.crec"
    w = RecordingWriter.create(folder, [key.public_key()], codec="ulaw", sample_rate=8000)
    for _ in range(TOTAL // 8 // SMALL):
        w.write_audio(chunk[:SMALL])
    w.close(small)
    rows.append(
        (
            "reader frames() (160 B audio frames)",
            best_rate(reader(small, key, True)),
            base_dec,
            0.0,
        )
    )
    print(f"bare AESGCM.encrypt 160 B:   {base_small / 1e6:8.1f} MB/s")
    print(f"bare AES-GCM 4080 B encrypt: {base_enc / 1e6:8.1f} MB/s")
    print(f"bare AES-GCM 4080 B decrypt: {base_dec / 1e6:8.1f} MB/s")
    failed = 0
    for name, rate, base, target in rows:
        ratio = rate / base
        ok = "ok" if ratio >= target else "BELOW TARGET"
        goal = f"target >= {target:.0%}" if target else "no target"
        print(f"{name:40s} {rate / 1e6:8.1f} MB/s  {ratio:6.1%} of bare  ({goal}) {ok}")
        failed += ratio < target
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
