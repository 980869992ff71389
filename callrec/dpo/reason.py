"""Why a recording was touched: the ``--reason`` text every access line carries.

Kept free of heavy imports: command parsers use :func:`reason_value` as an
argparse ``type`` when they register, before anything is decided.
"""

from __future__ import annotations

import argparse
import unicodedata

MAX_REASON = 500


def check_reason(text: str) -> str:
    """``text`` stripped; ValueError naming what is wrong when it is no usable reason.

    A reason is read later by someone auditing the access: it must say
    something, stay one readable line, and never be a page of text.
    """
    reason = text.strip()
    if not reason:
        raise ValueError("the reason is empty: say why (a ticket, a request, a court order)")
    if len(reason) > MAX_REASON:
        raise ValueError(f"the reason is {len(reason)} characters long; at most {MAX_REASON}")
    if any(unicodedata.category(c) in ("Cc", "Cf") for c in reason):
        raise ValueError("the reason holds control characters; write it as one plain line")
    return reason


def reason_value(text: str) -> str:
    """:func:`check_reason` as an argparse ``type`` (a bad one is a usage error, exit 2)."""
    try:
        return check_reason(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
