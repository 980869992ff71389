"""The ``callrec`` command: the composition root.

Each subcommand group lives in its own module with a ``register(subparsers)``
function; handlers take the parsed arguments and return the exit code. What
the groups share (exit codes, errors, key loading) is in
:mod:`callrec.cli.common`; they never import this package back.
Only this package may import the front ends (``ari_app``, ``agi``), and only
inside a handler, so ``callrec --help`` stays fast.

Exit codes (``docs/DESIGN.md``, defined in :mod:`callrec.cli.common`):
0 complete, 3 truncated, 4 invalid, 2 usage, 1 other errors; over several
files the worst wins (4 > 3 > 1 > 0).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import resource
import sys
from collections.abc import Sequence

from callrec import __version__
from callrec.cli.common import EXIT_ERROR, Handler
from callrec.errors import CallrecError

_COMMAND_MODULES = (
    "callrec.cli.crypto_cmds",
    "callrec.cli.audit_cmds",
    "callrec.cli.app_cmds",
    "callrec.cli.prompts_cmds",
    "callrec.cli.testcall_cmds",
    "callrec.cli.doctor_cmds",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callrec",
        description="GDPR-grade call recording for Asterisk.",
        epilog="exit codes: 0 complete, 3 truncated, 4 invalid, 2 usage, 1 other errors",
    )
    parser.add_argument("--version", action="version", version=f"callrec {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def _no_core_dumps() -> None:
    """A core dump of this process could hold decrypted audio or a private key."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: Sequence[str] | None = None) -> int:
    _no_core_dumps()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG
        if args.verbose > 1
        else logging.INFO
        if args.verbose
        else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Handler = args.func
    try:
        return handler(args)
    except CallrecError as exc:
        print(f"callrec {args.command}: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
