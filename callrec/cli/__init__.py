"""The ``callrec`` command: the composition root.

Each subcommand group lives in its own module with a ``register(subparsers)``
function; handlers take the parsed arguments and return the exit code. What
the groups share (exit codes, errors, key loading) is in
:mod:`callrec.cli.common`; they never import this package back, nor each
other. Only this package may import the front ends (``ari_app``, ``agi``),
and only inside a handler.

Each command loads only what it uses. :data:`COMMANDS` names every command's
module and its line in ``callrec --help``: a first, small parser (the front
door) finds the command, or prints that list, without importing any command
module; then only the chosen command's module registers the real parser.
Registering imports nothing heavy either: numpy, the prompt converter's
scipy and pyloudnorm, cryptography and asyncio are imported inside the
handlers (``tests/callrec/test_cli_imports.py``, ``bench/bench_cli.py``).

``-v``/``-q`` work before and after the subcommand: every parser the
commands add is a :class:`_CommandParser`, which has them.

Exit codes (``docs/DESIGN.md``, defined in :mod:`callrec.cli.common`):
0 complete, 3 truncated, 4 invalid, 2 usage, 1 other errors; over several
files the worst wins (4 > 3 > 1 > 0).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import resource
import sys

from callrec import __version__

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (for --help)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

# Every command, in the order `callrec --help` lists them: the module (in
# callrec.cli) whose register() adds it, and its line in that list.
COMMANDS: dict[str, tuple[str, str]] = {
    "keygen": (
        "crypto_cmds",
        "create a recipient key pair (or with --signing a recorder's signing key)",
    ),
    "seal": ("crypto_seal", "encrypt existing plaintext recordings into .crec files"),
    "decrypt": ("crypto_read", "decrypt recordings (files or folders) to WAV or FLAC + JSON"),
    "verify": ("verify_cmds", "check sealed recordings (files or folders), print a summary"),
    "inspect": ("crypto_read", "show a recording's header (and, with --key, its metadata)"),
    "export-tink": ("crypto_read", "export a recording's stream for any Tink implementation"),
    "audit": ("audit_cmds", "check the audit log"),
    "recordings": ("recordings_cmds", "list and show calls and recordings, hold or release one"),
    "catalog": ("catalog_cmds", "rebuild the catalogue of calls from the spool and audit log"),
    "subject": ("subject_cmds", "a caller's rights: export their recordings, or erase them"),
    "retention": ("retention_cmds", "delete the recordings whose retention has passed"),
    "serve": ("app_cmds", "run the Stasis app (and the FastAGI server) against Asterisk"),
    "calls": ("calls_cmds", "list the calls serve has in progress; pause or resume a recording"),
    "check-config": ("app_cmds", "check a config file; print every problem as file:key"),
    "config": ("config_cmds", "the shipped callrec.toml, systemd unit and Asterisk snippets"),
    "demo": ("app_cmds", "four calls through the built-in ARI simulator, recorded and verified"),
    "prompts": ("prompts_cmds", "install, list and check announcement prompts"),
    "testcall": (
        "testcall_cmds",
        "place scripted SIP test calls with sipp and check what was recorded",
    ),
    "doctor": (
        "doctor_cmds",
        "check the installation: config, ARI, Asterisk, prompts, media, spool, keys",
    ),
}


# -v and -q, the same in the main parser and (counted apart) in each command's.
_LEVEL_OPTIONS = (
    ("-v", "--verbose", "more log output (-vv: debug)"),
    ("-q", "--quiet", "log errors only"),
)
_AFTER = "_after"


class _CommandParser(argparse.ArgumentParser):
    """A subcommand's parser: it takes ``-v``/``-q`` too (``callrec verify -v F``).

    They count into names of their own (``verbose_after``): a subcommand's
    namespace replaces the values the main parser set, so sharing
    ``verbose`` would drop a ``-v`` given before the subcommand. SUPPRESS
    leaves them unset when not given, so a nested subcommand (``prompts
    add``) keeps what its parent saw.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for short, long, help_text in _LEVEL_OPTIONS:
            self.add_argument(
                short,
                long,
                action="count",
                dest=long.removeprefix("--") + _AFTER,
                default=argparse.SUPPRESS,
                help=help_text,
            )


def _main_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callrec",
        description="GDPR-grade call recording for Asterisk.",
        epilog="exit codes: 0 complete, 3 truncated, 4 invalid, 2 usage, 1 other errors",
    )
    parser.add_argument("--version", action="version", version=f"callrec {__version__}")
    for short, long, help_text in _LEVEL_OPTIONS:
        parser.add_argument(short, long, action="count", default=0, help=help_text)
    return parser


def _chosen_command(argv: Sequence[str] | None) -> str:
    """The command ``argv`` names; ``--help``, ``--version`` and slips end here (exit 0/2).

    Each command's parser is a bare stand-in: whatever follows the command
    is left for the real parser.
    """
    parser = _main_parser()
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, line) in COMMANDS.items():
        sub.add_parser(name, help=line, add_help=False)
    command: str = parser.parse_known_args(argv)[0].command
    return command


def build_parser(command: str) -> argparse.ArgumentParser:
    """The real parser for ``command``: the main options and what its module registers."""
    parser = _main_parser()
    sub = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=_CommandParser
    )
    importlib.import_module(f"callrec.cli.{COMMANDS[command][0]}").register(sub)
    return parser


def _verbosity(args: argparse.Namespace) -> tuple[int, int]:
    """(-v count, -q count), before and after the subcommand together."""
    verbose = args.verbose + getattr(args, "verbose" + _AFTER, 0)
    quiet = args.quiet + getattr(args, "quiet" + _AFTER, 0)
    return verbose, quiet


def _no_core_dumps() -> None:
    """A core dump of this process could hold decrypted audio or a private key."""
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: Sequence[str] | None = None) -> int:
    _no_core_dumps()
    args = build_parser(_chosen_command(argv)).parse_args(argv)
    args.verbose, args.quiet = _verbosity(args)

    from callrec.cli.common import EXIT_ERROR, Handler
    from callrec.errors import CallrecError
    from callrec.logsetup import print_error, setup_logging, verbosity_level

    setup_logging(verbosity_level(args.verbose, args.quiet))
    handler: Handler = args.func
    try:
        return handler(args)
    except CallrecError as exc:
        print_error(f"callrec {args.command}: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
