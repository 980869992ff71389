"""``callrec config template [NAME] | list``: the config files callrec ships, for an install.

The wheel carries the commented reference ``callrec.toml``, the systemd unit
and the Asterisk snippets (:mod:`callrec.data`), so an admin who installed
only the wheel has them too: ``callrec config template > callrec.toml``.
"""

from __future__ import annotations

import argparse
import sys

from callrec.cli.common import EXIT_OK, CliError, escape

REFERENCE = "callrec.toml"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "config",
        description="The config files that ship with callrec: the commented reference "
        f"{REFERENCE} (every key, its default and what it does), the systemd unit "
        "callrec.service and the Asterisk snippets (ari.conf, http.conf, extensions.conf, ...).",
    )
    cmds = parser.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    template = cmds.add_parser(
        "template",
        help=f"print a shipped file (default {REFERENCE}) to stdout",
        description=f"Print a shipped file, e.g. `callrec config template > {REFERENCE}`, "
        "then edit it and check it with `callrec check-config FILE`.",
    )
    template.add_argument(
        "name",
        nargs="?",
        default=REFERENCE,
        metavar="NAME",
        help=f"which file (default {REFERENCE}; `callrec config list` names them all)",
    )
    template.set_defaults(func=cmd_template)
    listing = cmds.add_parser("list", help="the names of the shipped files")
    listing.set_defaults(func=cmd_list)


def cmd_template(args: argparse.Namespace) -> int:
    from callrec.data import template, template_names

    text = template(args.name)
    if text is None:
        raise CliError(
            f"no shipped file named {escape(args.name)} (there are: {', '.join(template_names())})"
        )
    sys.stdout.write(text)
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from callrec.data import template_names

    for name in template_names():
        print(name)
    return EXIT_OK
