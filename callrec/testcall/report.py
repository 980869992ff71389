"""Pass/fail table and JUnit XML for test-call results."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from callrec.testcall.harness import CallReport


def table(reports: Sequence[CallReport]) -> str:
    rows = [("scenario", "check", "result", "detail")]
    for r in reports:
        for c in r.checks:
            rows.append((r.scenario, c.name, "pass" if c.ok else "FAIL", c.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  " + row[3]
        for row in rows
    ]
    passed = sum(r.ok for r in reports)
    lines.append(f"{passed} passed, {len(reports) - passed} failed")
    return "\n".join(lines)


def write_junit(reports: Sequence[CallReport], path: Path) -> None:
    """One testsuite, one testcase per scenario, a failure per failed check."""
    suite = ET.Element(
        "testsuite",
        name="callrec-testcall",
        tests=str(len(reports)),
        failures=str(sum(not r.ok for r in reports)),
    )
    for r in reports:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="callrec.testcall",
            name=r.scenario,
            time=f"{r.seconds:.1f}",
        )
        for c in r.checks:
            if not c.ok:
                ET.SubElement(case, "failure", message=f"{c.name}: {c.detail}")
        ET.SubElement(case, "system-out").text = "\n".join(
            f"{'pass' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in r.checks
        )
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
