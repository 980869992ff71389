"""Caller data in log lines: escaped, bounded, numbers masked, channel id on every line."""

from __future__ import annotations

import ast
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callrec.logutil import CallLogAdapter, escape, mask_number, safe


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("Alice", "Alice"),
        ("Ünal Çelik", "Ünal Çelik"),
        ("line\nINFO forged", "line\\nINFO forged"),
        ("\x1b[31mred\x1b[0m", "\\x1b[31mred\\x1b[0m"),
        ("del\x7f", "del\\x7f"),
        ("nul\x00", "nul\\x00"),
        ('say "hi" it\'s', 'say \\"hi\\" it\\\'s'),
        ("back\\slash", "back\\\\slash"),
        ("../../etc/passwd", "../../etc/passwd"),
        ("\u202egnp.exe", "\\u202egnp.exe"),  # right-to-left override
        ("a\u2028b", "a\\u2028b"),  # line separator
        ("\x85next", "\\x85next"),  # C1 next-line
    ],
)
def test_safe_escapes_like_repr_without_quotes(raw: str, shown: str) -> None:
    assert safe(raw) == shown
    assert "\n" not in safe(raw)


def test_safe_truncates_long_text_without_splitting_an_escape() -> None:
    assert safe("x" * 600) == "x" * 79 + "…"
    assert len(safe("y" * 600, limit=20)) == 20
    cut = safe("ab" + "\x1b" * 30, limit=10)
    assert cut == "ab\\x1b…"
    assert safe("x" * 80) == "x" * 80


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+4930123456", "+49301•••56"),
        ("+491701234567", "+49170•••67"),
        ("0301234567", "03012•••67"),
        ("1234567", "12•••67"),
        ("123456", "•••"),
        ("+123", "+•••"),
        ("", "•••"),
        ("+49\n301234567", "+49\\n30•••67"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    assert mask_number(number) == masked


def test_call_log_lines_carry_the_escaped_channel_id(caplog: pytest.LogCaptureFixture) -> None:
    log = CallLogAdapter(logging.getLogger("callrec.test"), "1795915759.31\nFAKE")
    with caplog.at_level(logging.INFO, logger="callrec.test"):
        log.info("answered, caller %s", mask_number("+4930123456"))
        log.warning("declined")
    assert [r.getMessage() for r in caplog.records] == [
        "[1795915759.31\\nFAKE] answered, caller +49301•••56",
        "[1795915759.31\\nFAKE] declined",
    ]
    assert all(getattr(r, "channel_id", None) == "1795915759.31\\nFAKE" for r in caplog.records)


@given(st.text(), st.integers(min_value=1, max_value=200))
def test_safe_output_is_one_bounded_printable_line(text: str, limit: int) -> None:
    full = safe(text, limit=10**9)
    assert ast.literal_eval(f"'{full}'") == text  # reads back like a repr
    shown = safe(text, limit)
    assert len(shown) <= limit
    assert shown.isprintable()
    if len(full) <= limit:
        assert shown == full
    else:
        assert shown.endswith("…")
        assert full.startswith(shown[:-1])


def test_escape_has_no_length_limit_and_escapes_only_the_quotes_asked_for() -> None:
    text = 'it\'s "x"\n\x1b[2J' * 20
    assert escape(text) == safe(text, limit=10_000)
    assert escape('it\'s "x"\n', quotes="") == 'it\'s "x"\\n'
    assert escape('it\'s "x"', quotes='"') == 'it\'s \\"x\\"'
