"""``callrec serve``, ``callrec check-config`` and ``callrec demo``.

The front end (``ari_app``), asyncio and the config loader are imported
inside the handlers only: this module is part of the composition root, and
``callrec --help`` must stay fast. Without ``--config`` (or check-config's
FILE) the config is ``$CALLREC_CONFIG``, else ``/etc/callrec/callrec.toml``.
"""

from __future__ import annotations

import argparse
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from callrec.cli.common import (
    CONFIG_DEFAULT,
    EXIT_ERROR,
    EXIT_OK,
    add_config_option,
    config_file,
    private_dir,
)

if TYPE_CHECKING:
    from ari_app.app import App, Service
    from callrec.config import Config

T = TypeVar("T")


def run_event_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop when it is installed (4x cheaper per RTP packet), else asyncio."""
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def _check_config(args: argparse.Namespace) -> int:
    from callrec.config import check_config

    problems = check_config(config_file(args.file, "FILE"))
    for problem in problems:
        print(problem)
    if problems:
        return EXIT_ERROR
    print("ok")
    return EXIT_OK


def extra_services(config: Config, app: App) -> list[Service]:
    """HOOK for further front ends in the ``serve`` process.

    The FastAGI front end (``agi.fastagi.AgiService``, listening on
    ``[agi] listen``) shares the app's services (its ``CallContext``): the app
    starts it after its own start-up, hands it each reloaded config and stops
    it before its shutdown. So does the Prometheus endpoint, which serves at
    ``[metrics] listen`` when set (a reload may set it later), and the control
    socket (``[control] socket``) that ``callrec calls`` talks to.
    """
    from agi.fastagi import AgiService
    from ari_app.control import ControlService
    from callrec.catalog.service import CatalogService
    from callrec.metrics import MetricsService

    catalog = CatalogService(config, app)  # enters each call's audit line, off the loop
    agi = AgiService(config, lambda: app.ctx)
    control = ControlService(config, app, agi)  # lists and pauses both front ends' calls
    return [agi, MetricsService(config, app), catalog, control]


def _serve(args: argparse.Namespace) -> int:
    from ari_app.app import App, LevelSource
    from callrec.config import load_config

    config = load_config(config_file(args.config))
    # -v/-q win over the config's level, at the start and at each reload.
    given = args.verbose or args.quiet
    app = App(config, level_source=LevelSource.CALLER if given else LevelSource.CONFIG)
    app.extra_services.extend(extra_services(config, app))
    run_event_loop(app.run())
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from ari_app.demo import run_demo

    result = run_event_loop(run_demo(private_dir(Path(args.out))))
    for line in result.lines():
        print(line)
    return EXIT_OK if result.ok else EXIT_ERROR


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add serve, check-config and demo."""
    p = sub.add_parser(
        "serve",
        description="Run the callrec ARI application until SIGTERM/SIGINT. "
        "On SIGTERM open recordings are sealed and callers stay connected; "
        "SIGHUP reads the config again for the next calls.",
    )
    add_config_option(p)
    p.set_defaults(func=_serve)

    p = sub.add_parser(
        "check-config",
        description="Print every problem of FILE as file:key: message (hint); "
        "exit 1 if there is any, else print ok.",
    )
    p.add_argument("file", nargs="?", metavar="FILE", help=f"callrec.toml ({CONFIG_DEFAULT})")
    p.set_defaults(func=_check_config)

    p = sub.add_parser(
        "demo",
        description="Start the ARI simulator on loopback, make a throwaway key pair, "
        "run the app, place four calls (implied consent, hang-up during the disclosure, "
        "opt-out digit, destination busy), then verify and decrypt what was recorded.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for keys, spool, WAVs")
    p.set_defaults(func=_demo)
