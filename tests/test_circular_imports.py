"""Each module imports on its own, and the core never imports a front end.

Dependency direction ``ari_app -> callrec <- agi``; only ``callrec.cli`` (the
composition root) may reach the front ends, and only lazily.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _modules() -> list[str]:
    names = []
    for pkg in ("callrec", "ari_app", "agi"):
        for path in sorted((ROOT / pkg).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__main__":
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            names.append(".".join(parts))
    return names


@pytest.mark.parametrize("module", _modules())
def test_module_imports_alone_and_core_stays_core(module: str) -> None:
    code = (
        "import sys, importlib\n"
        f"importlib.import_module({module!r})\n"
        "fronts = ('ari_app', 'agi')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in fronts)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert out.returncode == 0, out.stderr
    if module.split(".")[0] == "callrec":
        assert out.stdout.strip() == "", f"{module} pulls in front ends: {out.stdout.strip()}"
