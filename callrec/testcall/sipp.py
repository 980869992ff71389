"""Run sipp as the test caller.

The scenario template ships as ``uac.xml`` in this package; its ``{{field}}``
placeholders are filled per call (sipp cannot substitute its own keywords into
``play_pcap_audio`` or ``pause``). sipp plays the pcap through a raw socket, so
it needs root or CAP_NET_RAW.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import socket
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from callrec.errors import CallrecError

logger = logging.getLogger(__name__)

DEFAULT_DISPLAY = "callrec test"
CAP_NET_RAW = 13
_FIELD = re.compile(r"\{\{(\w+)\}\}")
NEEDS_RAW = (
    "sipp plays the caller's audio from a pcap through a raw socket: run as root, "
    "or grant the capability once with 'setcap cap_net_raw+ep \"$(command -v sipp)\"'"
)


class SippError(CallrecError):
    """sipp is missing, lacks privileges, or the call could not be placed."""


@dataclass(frozen=True)
class SippCall:
    """One call: ``caller`` is the SIP user part of its From header, ``display``
    the display name before it (quoted unless ``quoted`` is false; None: none).

    Both reach the wire exactly as given, hostile ones included (trace 09); a
    display name with surrogate escapes (``bytes.decode("utf-8",
    "surrogateescape")``) is sent as the original, undecodable bytes.
    """

    target: str
    exten: str
    caller: str
    pcap: Path
    hold: float
    name: str
    local_ip: str = "127.0.0.1"
    user: str | None = None
    password: str | None = None
    timeout: float = 120.0
    display: str | None = DEFAULT_DISPLAY
    quoted: bool = True

    def from_header(self) -> str:
        """The From name-addr (sipp fills in its own address and port)."""
        uri = f"<sip:{self.caller}@[local_ip]:[local_port]>"
        if self.display is None:
            return uri
        name = f'"{self.display}"' if self.quoted else self.display
        return f"{name} {uri}"


@dataclass(frozen=True)
class SippResult:
    returncode: int
    answered: bool
    remote_hangup: bool
    log_tail: str


def template() -> str:
    return resources.files("callrec.testcall").joinpath("uac.xml").read_text()


def render(fields: dict[str, str]) -> str:
    text = template()
    for key, value in fields.items():
        text = text.replace("{{" + key + "}}", value)
    missing = sorted(set(_FIELD.findall(text)))
    if missing:
        raise SippError(f"scenario template has unfilled fields: {', '.join(missing)}")
    return text


def find_sipp() -> str:
    path = shutil.which("sipp")
    if path is None:
        raise SippError("sipp not found: install it with 'apt-get install sip-tester'")
    return path


def has_net_raw(binary: str) -> bool:
    """True when this process (or the sipp binary) may open raw sockets."""
    if os.geteuid() == 0:
        return True
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        status = ""
    for line in status.splitlines():
        if line.startswith("CapEff:") and int(line.split()[1], 16) >> CAP_NET_RAW & 1:
            return True
    try:
        return bool(os.getxattr(binary, "security.capability"))
    except OSError:
        return False


def free_port(host: str, step: int = 1) -> int:
    """A UDP port free on ``host`` now; with ``step`` > 1 the next ``step`` ports too
    (sipp's media port is followed by RTCP and video ports)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.bind((host, 0))
            port: int = probe.getsockname()[1]
        if port + step < 65536 and all(_udp_free(host, port + k) for k in range(1, step)):
            return port
    raise SippError(f"no free UDP ports on {host}")


def _udp_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def command(call: SippCall, scenario_file: Path, binary: str) -> list[str]:
    argv = [binary, call.target, "-sf", str(scenario_file), "-s", call.exten]
    # Ports of our own choosing: sipp's defaults (5060, 6000) clash with a PBX
    # on the same host.
    sip_port, media_port = free_port(call.local_ip), free_port(call.local_ip, step=4)
    argv += ["-i", call.local_ip, "-p", str(sip_port), "-mp", str(media_port)]
    argv += ["-m", "1", "-nostdin"]
    argv += ["-timeout", f"{round(call.timeout)}s", "-timeout_error", "-trace_msg"]
    if call.user:
        argv += ["-au", call.user, "-ap", call.password or ""]
    return argv


async def place_call(call: SippCall, workdir: Path) -> SippResult:
    """Place one call with sipp and wait for it to end."""
    binary = find_sipp()
    if not has_net_raw(binary):
        raise SippError(NEEDS_RAW)
    fields = {
        "from": call.from_header(),
        "pcap": str(call.pcap.resolve()),
        "hold_ms": str(round(call.hold * 1000)),
        "name": call.name,
    }
    scenario_file = workdir / f"{call.name}.xml"
    scenario_file.write_bytes(render(fields).encode("utf-8", "surrogateescape"))
    proc = await asyncio.create_subprocess_exec(
        *command(call, scenario_file, binary),
        cwd=workdir,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    received = _received_first_lines(workdir, call.name)
    return SippResult(
        returncode=proc.returncode if proc.returncode is not None else -1,
        answered=any(line.startswith("SIP/2.0 200") for line in received),
        remote_hangup=any(line.startswith("BYE ") for line in received),
        log_tail=out.decode(errors="replace")[-600:],
    )


def _received_first_lines(workdir: Path, name: str) -> list[str]:
    """The first line of every SIP message sipp received (from its -trace_msg log)."""
    lines: list[str] = []
    for log in workdir.glob(f"{name}_*_messages.log"):
        for block in log.read_text(errors="replace").split("\n-----"):
            if "message received" not in block:
                continue
            body = block.split("\n\n", 1)[-1].strip().splitlines()
            if body:
                lines.append(body[0])
    return lines
