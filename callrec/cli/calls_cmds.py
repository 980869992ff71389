"""``callrec calls list|pause|resume``: the calls of the running ``callrec serve``.

What a CRM or an agent desktop runs to keep a card number out of a
recording: ``callrec calls pause CALL_ID``, then ``resume``. It talks to
``serve`` over the Unix socket of ``[control] socket`` (owner only: run it as
the callrec user or root), one JSON line each way
(:mod:`callrec.control_protocol`). It shows and controls the Stasis app's
calls and the dialplan's (FastAGI) recordings alike, the ``FRONTEND`` column
(``ari``, ``agi``) telling them apart. Exit 0 when done (a pause of a paused
call changes nothing and says so), 1 when ``serve`` is not there or refuses
(an unknown call id, a call not recorded, a recording that has ended: its
writer refused the resume at the 7-day limit or on a failed disk), 2 for
usage.
"""

from __future__ import annotations

import argparse
import json
import socket
from pathlib import Path
from typing import Any

from callrec.cli.common import EXIT_ERROR, EXIT_OK, add_config_option, config_file, escape, warn

# How long to wait for serve's answer: it answers from its event loop at once.
TIMEOUT = 5.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "calls",
        description="The calls `callrec serve` has in progress; pause and resume their "
        "recordings (PCI DSS: keep a card number out), over the control socket "
        "([control] socket, owner only).",
    )
    commands = p.add_subparsers(dest="calls_command", metavar="SUBCOMMAND", required=True)
    listing = commands.add_parser("list", help="the calls in progress, with their call ids")
    listing.add_argument("--json", action="store_true", help="print the reply as JSON")
    _socket_options(listing)
    listing.set_defaults(func=_list)
    for name, what in (
        ("pause", "stop recording CALL_ID's audio until resumed (the file notes the pause)"),
        ("resume", "record CALL_ID again"),
    ):
        c = commands.add_parser(name, help=what, description=what)
        c.add_argument(
            "call",
            metavar="CALL_ID",
            help="the caller's channel id (Asterisk uniqueid), the linkedid, the agent's "
            "channel id, the recording id, or a dialplan recording's CALLREC_ID",
        )
        _socket_options(c)
        c.set_defaults(func=_pause_or_resume, op=name)


def _socket_options(parser: argparse.ArgumentParser) -> None:
    add_config_option(parser)
    parser.add_argument(
        "--socket",
        type=Path,
        metavar="PATH",
        help="the control socket (default: [control] socket of the config)",
    )


def _list(args: argparse.Namespace) -> int:
    from callrec.control_protocol import Op, Request

    reply = _ask(args, Request(Op.LIST))
    if reply is None:
        return EXIT_ERROR
    calls: list[dict[str, Any]] = reply.get("calls") or []
    if args.json:
        print(json.dumps(calls, indent=2))
        return EXIT_OK
    if not calls:
        print("no calls in progress")
        return EXIT_OK
    print(_row(*_HEADER))
    for call in calls:
        values = [call.get(key) for key in _COLUMNS]
        cells = [escape(str(value or "-")) for value in values]
        cells[-2] = "yes" if call.get("paused") else "no"
        print(_row(*cells))
    return EXIT_OK


# The table's columns: the reply's keys, their headings and widths (the last unpadded).
_COLUMNS = ("call", "frontend", "state", "dialled", "caller", "paused", "recording")
_HEADER = ("CALL", "FRONTEND", "STATE", "DIALLED", "CALLER", "PAUSED", "RECORDING")
_WIDTHS = (24, 8, 10, 12, 14, 6)


def _row(*cells: str) -> str:
    padded = [f"{cell:<{width}}" for cell, width in zip(cells, _WIDTHS, strict=False)]
    return " ".join([*padded, cells[-1]])


def _pause_or_resume(args: argparse.Namespace) -> int:
    from callrec.control_protocol import Op, Request

    reply = _ask(args, Request(Op(args.op), args.call))
    if reply is None:
        return EXIT_ERROR
    state = "paused" if reply.get("paused") else "recording"
    call = escape(str(reply.get("call")))
    if reply.get("changed"):
        print(f"call {call}: {state}")
    else:
        print(f"call {call}: already {state}")
    return EXIT_OK


def _ask(args: argparse.Namespace, request: Any) -> dict[str, Any] | None:
    """One request and its reply, or None after saying why not (on stderr)."""
    from callrec.control_protocol import MAX_REPLY, ControlError, parse_reply

    path = _socket_path(args)
    if path is None:
        return None
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(TIMEOUT)
            sock.connect(str(path))
            sock.sendall(request.encode())
            line = _read_line(sock, MAX_REPLY)
        return parse_reply(line)
    except FileNotFoundError:
        why = "no control socket there: is callrec serve running?"
    except ConnectionRefusedError:
        why = "nothing answers: callrec serve is not running"
    except PermissionError:
        why = "permission denied: run this as the user callrec serve runs as, or root"
    except TimeoutError:
        why = f"callrec serve did not answer within {TIMEOUT:g} s"
    except OSError as exc:
        why = exc.strerror or str(exc)
    except ControlError as exc:
        warn("calls", escape(exc.message))
        return None
    warn("calls", f"{escape(str(path))}: {why}")
    return None


def _socket_path(args: argparse.Namespace) -> Path | None:
    if args.socket is not None:
        return Path(args.socket)
    from callrec.config import load_config

    config = load_config(config_file(args.config), sections=("control",), check_files=False)
    if config.control.socket is None:
        warn("calls", f"{escape(str(config.path))}: [control] socket is empty: no control socket")
    return config.control.socket


def _read_line(sock: socket.socket, limit: int) -> bytes:
    """One reply line (the server closes after a refusal, so EOF ends it too)."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            from callrec.control_protocol import ControlError

            raise ControlError(f"the reply is longer than {limit} bytes")
    return bytes(data)
