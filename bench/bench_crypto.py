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


def paired(subject: Callable[[], int], baseline: Callable[[], int]) -> tuple[float, float]:
    """Best rates (bytes/s) of subject and baseline, run alternately so load hits both."""
    best_s = best_b = 0.0
    for _ in range(REPEATS):
        best_s = max(best_s, _rate(subject))
        best_b = max(best_b, _rate(baseline))
    return best_s, best_b


def _rate(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    done = fn()
    return done / (time.perf_counter() - start)


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


def bare_io_and_crypto(folder: Path, io_only: bool) -> Callable[[], int]:
    """Floor for the 64 KiB writer: the same segments sealed and written, no framing or checks."""
    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)
    plain = os.urandom(SEGMENT)
    sealed = aead.encrypt(nonce, plain, None)

    def run() -> int:
        path = folder / "floor.bin"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        per_write = BIG // SEGMENT
        for _ in range(TOTAL // BIG):
            if io_only:
                batch = [sealed] * per_write
            else:
                batch = [aead.encrypt(nonce, plain, None) for _ in range(per_write)]
            os.writev(fd, batch)
        os.close(fd)
        path.unlink()
        return TOTAL // BIG * per_write * SEGMENT

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
    enc, dec = bare_segments(encrypt=True), bare_segments(encrypt=False)
    sample = _sample(folder, key, BIG, folder / "sample.crec")
    small = _sample(folder, key, SMALL, folder / "small.crec")
    rows = [
        ("writer write_audio(160 B)", writer(folder, key, SMALL, True), bare_small, 0.5),
        ("writer write(160 B)", writer(folder, key, SMALL, False), bare_small, 0.5),
        ("writer write(64 KiB) to tmpfs", writer(folder, key, BIG, False), enc, 0.3),
        ("  floor: writev of sealed data, no crypto", bare_io_and_crypto(folder, True), enc, 0.0),
        ("  floor: bare seal + writev, no framing", bare_io_and_crypto(folder, False), enc, 0.0),
        ("reader chunks() (verified segments)", reader(sample, key, False), dec, 0.3),
        ("reader frames() (160 B audio frames)", reader(small, key, True), dec, 0.0),
    ]
    print("baselines: bare AESGCM.encrypt of 160 B; bare AES-GCM over 4080 B pieces, no I/O")
    failed = 0
    for name, subject, baseline, target in rows:
        rate, base = paired(subject, baseline)
        ratio = rate / base
        goal = f"target >= {target:.0%}" if target else "no target"
        verdict = "ok" if ratio >= target else "BELOW TARGET"
        print(
            f"{name:42s} {rate / 1e6:7.0f} MB/s vs {base / 1e6:7.0f} MB/s"
            f"  {ratio:6.1%}  ({goal}) {verdict}"
        )
        failed += ratio < target
    return 1 if failed else 0


def _sample(folder: Path, key: PrivateKey, size: int, path: Path) -> Path:
    w = RecordingWriter.create(folder, [key.public_key()], codec="ulaw", sample_rate=8000)
    chunk = os.urandom(size)
    for _ in range(TOTAL // (8 if size == SMALL else 1) // size):
        if size == SMALL:
            w.write_audio(chunk)
        else:
            w.write(chunk)
    w.close(path)
    return path


if __name__ == "__main__":
    sys.exit(main())
