"""``callrec doctor``: the checklist an admin runs after install and after every change.

The checks live in :mod:`callrec.doctor`, imported by the handler only, so
``callrec --help`` does not pay for aiohttp or the key code.
"""

from __future__ import annotations

import argparse
import asyncio
import re

from callrec.cli.common import EXIT_ERROR, EXIT_OK, add_config_option, escape
from callrec.config_path import default_config_path

_SIZE = re.compile(r"^(\d+)([KMGT]?)(?:i?B)?$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def size(text: str) -> int:
    """``500M``, ``1G``, ``1GiB`` or plain bytes (an argparse type)."""
    found = _SIZE.match(text.strip())
    if found is None:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 500M, 1G, 2147483648)")
    return int(found.group(1)) * _UNITS[found.group(2).upper()]


def _doctor(args: argparse.Namespace) -> int:
    from callrec.doctor.result import all_passed, render_json, render_text
    from callrec.doctor.runner import Options, run_doctor

    # Not cli.common.config_file(): a missing config is the doctor's first FAIL line.
    path = args.config or default_config_path()
    options = (
        Options(wait=args.wait) if args.min_free is None else Options(args.min_free, args.wait)
    )
    results = asyncio.run(run_doctor(path, options))
    if args.json:
        print(render_json(str(path), results))
    else:
        print(f"callrec doctor: {escape(str(path))}")
        for line in render_text(results):
            print(line)
    return EXIT_OK if all_passed(results) else EXIT_ERROR


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add doctor."""
    p = sub.add_parser(
        "doctor",
        help="check the installation: config, ARI, Asterisk, prompts, media, spool, keys",
        description="Check everything a recorded call needs, one line each (ok, warn, FAIL) "
        "with a hint: the config; ARI with its credentials; the Asterisk version and "
        "modules; the Stasis app name not taken; every prompt in every language and "
        "format, with its SHA-256; an ExternalMedia round trip (Asterisk's audio reaches "
        "recording.media_host); the spool (writable, room, .crec.part leftovers); the "
        "audit log; recipient, signing and pseudonym keys; the FastAGI port; Asterisk's "
        "clock. Exit 0 only when every check passes. Prints no password, key or number.",
    )
    add_config_option(p)
    p.add_argument("--json", action="store_true", help="one JSON object instead of the list")
    p.add_argument(
        "--min-free",
        type=size,
        metavar="SIZE",
        help="free space the spool must keep, e.g. 500M or 2G (default 1G)",
    )
    p.add_argument(
        "--wait",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds to wait for Asterisk at each step (default 5)",
    )
    p.set_defaults(func=_doctor)
