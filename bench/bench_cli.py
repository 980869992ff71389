"""How long ``callrec --help`` takes, as a ratio to a bare ``python3 -c pass``.

Target (issue 12): at most 3x. An admin types ``callrec ...`` all day; a
command that first loads scipy for seconds feels broken. Both are started
the same way in the same run, alternately so that load on the machine hits
both, and the best of each is compared: the best run is the one least
disturbed by anything else, so it is what the code itself costs. The
baseline is the same interpreter with the same ``site`` (the venv's, as the
``callrec`` script gets), so the ratio is what callrec adds, not Python's
own start-up.

Also listed, with no target: a few other commands' ``--help`` and the
modules each loads (the heavy ones are exactly what must stay out).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPEATS = 21
TARGET = 3.0
HEAVY = ("scipy", "pyloudnorm", "numpy", "soundfile", "cryptography", "aiohttp", "asyncio")


def callrec_command() -> list[str]:
    """The ``callrec`` console script beside this Python, else ``python -m callrec``."""
    script = Path(sys.executable).with_name("callrec")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "callrec"]


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def best_pair(subject: list[str], baseline: list[str]) -> tuple[float, float]:
    """Best wall times of subject and baseline, run alternately."""
    best_s = best_b = float("inf")
    for _ in range(REPEATS):
        best_s = min(best_s, wall(subject))
        best_b = min(best_b, wall(baseline))
    return best_s, best_b


def heavy_modules(args: list[str]) -> list[str]:
    """Which of HEAVY ``callrec ARGS`` imports, from ``python -X importtime``."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "callrec", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    loaded = {
        line.rsplit("|", 1)[1].strip().split(".")[0]
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and "|" in line
    }
    return [name for name in HEAVY if name in loaded]


def main() -> int:
    bare = [sys.executable, "-c", "pass"]
    command = callrec_command()
    rows = [("callrec --help", [*command, "--help"], TARGET)]
    for sub in ("verify", "check-config", "serve", "prompts"):
        rows.append((f"callrec {sub} --help", [*command, sub, "--help"], 0.0))
    print(f"baseline: {' '.join(bare)} (same interpreter and site), best of {REPEATS}")
    failed = 0
    for name, argv, target in rows:
        took, base = best_pair(argv, bare)
        ratio = took / base
        goal = f"target <= {target:g}x" if target else "no target"
        verdict = "" if not target else ("ok" if ratio <= target else "ABOVE TARGET")
        print(
            f"{name:28s} {took * 1000:6.1f} ms vs {base * 1000:5.1f} ms"
            f"  {ratio:4.1f}x  ({goal}) {verdict}".rstrip()
        )
        failed += bool(target) and ratio > target
    print(f"heavy modules loaded by --help: {', '.join(heavy_modules(['--help'])) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
