"""The real-PBX rig: Asterisk 22 with tests/pbx/conf, sipp agents, ``callrec serve``.

``tests/pbx/run`` (``make test-pbx``, CI) starts the PBX, installs short
prompts with ``callrec prompts add`` and exports ``CALLREC_TEST_*``. Without
them these tests skip, except under ``CI=true``, where a PBX or sipp that
cannot be reached fails the test instead.

Fixtures, for tests of any real-PBX path (crash recovery, simulator
agreement, ...):

- ``pbx`` (session): the PBX's addresses, with a small REST client and its CLI.
- ``agents`` (session): the sipp UASes behind ``PJSIP/agent`` (answers and
  echoes the caller's RTP) and ``PJSIP/busy`` (486). Nothing listens for
  ``PJSIP/away``: it rings until the originate timeout (trace 04a).
- ``make_recorder`` / ``recorder``: ``callrec serve`` as a real subprocess
  (SIGTERM or kill it, start it again on the same spool) with its own config,
  keys, spool, audit log and log file. Each test's calls, channels and bridges
  are hung up and removed when it ends.

A caller is a sipp UAC playing RTP from a pcap: ``recorder.options(exten)``
and ``recorder.scenarios(exten)`` feed ``callrec.testcall.harness.run_scenario``,
which finds the call's audit line and checks what a data-protection officer
would (decision, recording verifies, its length, its audio follows what the
caller sent).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ari_app.demo import write_keys
from callrec.audit import read_audit
from callrec.config import Config, load_config
from callrec.crypto.keys import PrivateKey
from callrec.evidence import prompt_seconds
from callrec.media.signals import speech_like
from callrec.testcall.harness import CallReport, Options
from callrec.testcall.report import table
from callrec.testcall.scenarios import Scenario, builtin_scenarios
from callrec.testcall.sipp import SippError, find_sipp, has_net_raw

ROOT = Path(__file__).resolve().parents[2]
PBX_DIR = ROOT / "tests" / "pbx"

# What tests/pbx/conf routes where (extensions.conf, pjsip.conf).
STASIS_EXTEN = "100"  # Stasis(callrec); callrec dials PJSIP/agent
BUSY_EXTEN = "200"  # Stasis(callrec); callrec dials PJSIP/busy (486)
AWAY_EXTEN = "300"  # Stasis(callrec); callrec dials PJSIP/away (no answer)
AGI_EXTEN = "700"  # AGI /consent, /record, Dial(PJSIP/agent)
AGI_CONTROLS_EXTEN = "800"  # AGI /consent, /record, 2 s, /pause, 2 s, /resume, 2 s, /stop
AGI_PORT = 4573
AGENT_PORT = 5070
BUSY_PORT = 5071
AWAY_RING_SECONDS = 2
RATE = 8000


def need(ok: bool, why: str) -> None:
    """Skip when the real PBX (or sipp) is not there; under CI=true fail instead."""
    if ok:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"real-PBX test cannot run in CI: {why}", pytrace=False)
    pytest.skip(why)


class PbxError(Exception):
    """A REST or CLI request to the test PBX failed."""


@dataclass(frozen=True)
class Pbx:
    """The test PBX: ARI, SIP address, sounds folder, and (with tests/pbx/run) its CLI."""

    ari_url: str
    user: str
    password: str
    sip_target: str
    sounds: Path
    script: Path | None
    rundir: Path | None

    @classmethod
    def from_env(cls) -> Pbx:
        env = os.environ
        url = env.get("CALLREC_TEST_ARI_URL", "")
        target = env.get("CALLREC_TEST_SIP_TARGET", "")
        need(
            bool(url and target),
            "CALLREC_TEST_ARI_URL / CALLREC_TEST_SIP_TARGET are not set "
            "(run the real-PBX tests with 'make test-pbx')",
        )
        script, rundir = env.get("CALLREC_TEST_PBX", ""), env.get("CALLREC_TEST_PBX_RUNDIR", "")
        return cls(
            ari_url=url.rstrip("/"),
            user=env.get("CALLREC_TEST_ARI_USER", "callrec"),
            password=env.get("CALLREC_TEST_ARI_PASSWORD", "callrec-test"),
            sip_target=target,
            sounds=Path(env.get("CALLREC_TEST_SOUNDS_DIR", "/var/lib/asterisk/sounds")),
            script=Path(script) if script else None,
            rundir=Path(rundir) if rundir else None,
        )

    # --- ARI ------------------------------------------------------------------

    def rest(self, method: str, path: str, **query: str) -> Any:
        """One ARI request; the parsed JSON body (None when empty)."""
        url = f"{self.ari_url}/ari{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        auth = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        request = urllib.request.Request(  # noqa: S310 (an http URL from the test's own env)
            url, method=method, headers={"Authorization": f"Basic {auth}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                body = response.read()
        except urllib.error.HTTPError as exc:
            raise PbxError(f"{method} {path}: HTTP {exc.code} {exc.read()[:200]!r}") from exc
        except OSError as exc:
            raise PbxError(f"{method} {path}: {exc}") from exc
        return json.loads(body) if body else None

    def up(self) -> bool:
        """Fully booted: ARI answers (it says 503 while Asterisk boots, trace 07)."""
        try:
            self.rest("GET", "/asterisk/info", only="status")
        except PbxError:
            return False
        return True

    def channels(self) -> list[dict[str, Any]]:
        return list(self.rest("GET", "/channels"))

    def bridges(self) -> list[dict[str, Any]]:
        return list(self.rest("GET", "/bridges"))

    def websocket_ports(self, app: str) -> set[int]:
        """The client ports of the events websockets subscribed to ``app`` now."""
        ports = set()
        for line in self.cli("ari show websocket sessions").splitlines():
            fields = line.split()
            # Connection ID, Type, RemoteAddr, State, Apps
            if len(fields) >= 5 and fields[3] == "Up" and app in fields[4].split(","):
                ports.add(int(fields[2].rpartition(":")[2]))
        return ports

    def clean(self) -> None:
        """Hang up every channel and remove every bridge a test left behind."""
        for channel in self.channels():
            self._quietly("DELETE", f"/channels/{channel['id']}")
        for bridge in self.bridges():
            self._quietly("DELETE", f"/bridges/{bridge['id']}")

    def _quietly(self, method: str, path: str) -> None:
        try:
            self.rest(method, path)
        except PbxError as exc:
            if "HTTP 404" not in str(exc):
                raise

    # --- CLI ------------------------------------------------------------------

    def cli(self, command: str) -> str:
        """An Asterisk CLI command through ../shared/asterisk/pbx (tests/pbx/run sets it)."""
        need(
            self.script is not None and self.rundir is not None,
            "CALLREC_TEST_PBX / CALLREC_TEST_PBX_RUNDIR are not set (tests/pbx/run sets them)",
        )
        assert self.script is not None and self.rundir is not None
        done = subprocess.run(
            [str(self.script), "cli", str(self.rundir), command],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        if done.returncode != 0:
            raise PbxError(f"pbx cli {command!r}: exit {done.returncode}: {done.stderr[-300:]}")
        return done.stdout

    def restart(self) -> None:
        """``core restart now``: every call is hung up, Asterisk re-executes itself.

        The CLI connection drops with the old process, so its exit code says
        nothing; wait for :meth:`up` afterwards.
        """
        with contextlib.suppress(PbxError, subprocess.TimeoutExpired):
            self.cli("core restart now")


@pytest.fixture(scope="session")
def pbx() -> Pbx:
    """The running test PBX and sipp able to play RTP (else skip; under CI, fail)."""
    found = Pbx.from_env()
    try:
        found.rest("GET", "/asterisk/info", only="status")
    except PbxError as exc:
        need(False, f"the test PBX at {found.ari_url} does not answer: {exc}")
    try:
        binary = find_sipp()
    except SippError as exc:
        need(False, str(exc))
    need(has_net_raw(binary), "sipp needs root or CAP_NET_RAW to play the callers' RTP")
    return found


# --- agents -------------------------------------------------------------------


def _tcp_ports(pid: int) -> set[int]:
    """The local ports of the TCP sockets process ``pid`` holds (from /proc)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for kind in ("tcp", "tcp6"):
        for row in Path(f"/proc/{pid}/net/{kind}").read_text().splitlines()[1:]:
            cols = row.split()
            if cols[9] in inodes:
                ports.add(int(cols[1].rpartition(":")[2], 16))
    return ports


def _udp_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _start_uas(workdir: Path, port: int, scenario: list[str]) -> subprocess.Popen[bytes]:
    if _udp_bound(port):
        raise RuntimeError(f"UDP 127.0.0.1:{port} is taken: another agent or PBX test is running")
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [find_sipp(), *scenario, "-i", "127.0.0.1", "-p", str(port)]
    argv += ["-mp", str(_free_udp_port()), "-nostdin"]
    proc = subprocess.Popen(
        argv, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 5
    while not _udp_bound(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"sipp UAS on port {port} did not start: {' '.join(argv)}")
        time.sleep(0.05)
    return proc


@dataclass(frozen=True)
class Agents:
    """The destinations' UASes (tests/pbx/conf/pjsip.conf)."""

    agent: subprocess.Popen[bytes]
    busy: subprocess.Popen[bytes]

    def alive(self) -> bool:
        return self.agent.poll() is None and self.busy.poll() is None


@pytest.fixture(scope="session")
def agents(pbx: Pbx, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agents]:
    work = tmp_path_factory.mktemp("agents")
    agent = _start_uas(work / "agent", AGENT_PORT, ["-sn", "uas", "-rtp_echo"])
    try:
        busy = _start_uas(work / "busy", BUSY_PORT, ["-sf", str(PBX_DIR / "uas-busy.xml")])
    except BaseException:
        agent.kill()
        raise
    try:
        yield Agents(agent, busy)
    finally:
        for proc in (agent, busy):
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- the recorder ---------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """The callrec.toml keys a test varies; the rest is fixed by the test PBX."""

    mode: str = "implied"
    grace: float = 1.0
    timeout: float = 2.0
    on_decline: str = "continue"
    on_failure: str = "best-effort"
    media_format: str = "ulaw"
    record_after_consent: bool = False
    # None: <out>/spool. A path that is a file makes the spool unusable.
    spool: Path | None = None


def write_config(out: Path, pbx: Pbx, settings: Settings) -> Path:
    pub, _, pseudo = write_keys(out)
    text = f"""\
[ari]
url = "{pbx.ari_url}"
user = "{pbx.user}"
password = "{pbx.password}"
app = "callrec"

[recording]
spool = "{settings.spool or out / "spool"}"
recipients = ["{pub}"]
format = "{settings.media_format}"
fsync_interval = 1.0
on_failure = "{settings.on_failure}"

[privacy]
pseudonym_key = "{pseudo}"
audit_log = "{out / "audit.jsonl"}"

[catalog]
url = "sqlite:///{out / "catalog.sqlite3"}"

[consent]
mode = "{settings.mode}"
grace = {settings.grace}
optout_digit = "2"
accept_digit = "1"
timeout = {settings.timeout}
on_decline = "{settings.on_decline}"

[prompts]
sounds_dir = "{pbx.sounds}"
languages = ["en"]
default_language = "en"

[destinations]
default = {{ endpoint = "PJSIP/agent", timeout = 10 }}
"{BUSY_EXTEN}" = {{ endpoint = "PJSIP/busy", timeout = 10 }}
"{AWAY_EXTEN}" = {{ endpoint = "PJSIP/away", timeout = {AWAY_RING_SECONDS} }}

[agi]
listen = "127.0.0.1:{AGI_PORT}"
record_after_consent = {str(settings.record_after_consent).lower()}

[logging]
level = "INFO"

[control]
# Each recorder's own socket, never /run/callrec's (tests/realpbx/test_pause.py uses it).
socket = "{out / "control.sock"}"
"""
    path = out / "callrec.toml"
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class Recorder:
    """``callrec serve`` against the test PBX, as a subprocess, and what it writes."""

    pbx: Pbx
    out: Path
    config_path: Path
    keys: list[PrivateKey]
    proc: asyncio.subprocess.Process | None = None
    exits: list[int] = field(default_factory=list)

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    @property
    def key_path(self) -> Path:
        return self.out / "demo.key"

    @property
    def audit_path(self) -> Path:
        return self.out / "audit.jsonl"

    @property
    def spool(self) -> Path:
        return self.config.recording.spool

    @property
    def log_path(self) -> Path:
        return self.out / "serve.log"

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def audit(self) -> list[dict[str, Any]]:
        if not self.audit_path.exists():
            return []
        return list(read_audit(self.audit_path))

    def open_recordings(self) -> list[Path]:
        """Recordings being written now (``spool/incoming/*.crec.part``)."""
        return sorted((self.spool / "incoming").glob("*.crec.part"))

    def sealed(self) -> list[Path]:
        return sorted(self.spool.glob("[0-9]*/*/*/*.crec"))

    # --- life cycle -----------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    async def start(self, preexec_fn: Callable[[], None] | None = None) -> None:
        """Start ``callrec serve`` and wait until its events websocket is up."""
        assert not self.running, "callrec serve is already running"
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "callrec",
                "serve",
                "--config",
                str(self.config_path),
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=preexec_fn,
            )
        await self.wait_ready()

    async def wait_ready(self, within: float = 20.0) -> None:
        """Connected: Asterisk lists an events websocket of this very process.

        "The app is listed" (``GET /applications``) is no readiness signal:
        Asterisk keeps listing an app whose websocket closed while calls were
        in it, even after those calls have ended.
        """

        def connected() -> bool:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise AssertionError(
                    f"callrec serve exited {self.proc.returncode}:\n{self.log_text()[-2000:]}"
                )
            return bool(self.pbx.websocket_ports("callrec") & _tcp_ports(self.proc.pid))

        await wait_until(connected, within, "callrec serve to connect")

    async def stop(self, sig: int = signal.SIGTERM, within: float = 10.0) -> int:
        """Send ``sig`` (SIGTERM: the orderly shutdown) and wait for the exit code."""
        assert self.proc is not None, "callrec serve was never started"
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        code = await asyncio.wait_for(self.proc.wait(), within)
        self.exits.append(code)
        return code

    async def kill(self) -> int:
        """SIGKILL, for tests of what a crash leaves behind."""
        return await self.stop(signal.SIGKILL)

    # --- callers --------------------------------------------------------------

    def disclosure_seconds(self, exten: str = STASIS_EXTEN) -> float:
        path = self.config.prompt_for(exten, "en", "disclosure").path_wav
        seconds = prompt_seconds(path)
        if seconds is None:
            raise AssertionError(f"no disclosure prompt at {path} (tests/pbx/run installs it)")
        return seconds

    def options(self, exten: str, audio: npt.NDArray[np.int16] | None = None) -> Options:
        """sipp callers dialling ``exten``, judged against this recorder's files."""
        return Options(
            target=self.pbx.sip_target,
            exten=exten,
            spool=self.spool,
            audit_log=self.audit_path,
            keys=self.keys,
            audio=speech_like(40.0, seed=5) if audio is None else audio,
            wait=20.0,
        )

    def scenarios(self, exten: str = STASIS_EXTEN, talk: float = 3.0) -> dict[str, Scenario]:
        """stay / hangup / optout / long, timed for this recorder's disclosure and grace."""
        disclosure = self.disclosure_seconds(exten)
        return builtin_scenarios(
            disclosure=disclosure,
            grace=self.config.consent.grace,
            hangup_at=disclosure / 2,
            digit_at=disclosure / 2,
            optout_digit=self.config.consent.optout_digit,
            talk=talk,
            long_talk=20.0,
        )


MakeRecorder = Callable[..., Awaitable[Recorder]]


@pytest.fixture
async def make_recorder(pbx: Pbx, agents: Agents, tmp_path: Path) -> AsyncIterator[MakeRecorder]:
    """``await make_recorder(start=True, **settings)``: a configured ``callrec serve``."""
    made: list[Recorder] = []

    async def make(*, start: bool = True, **changes: Any) -> Recorder:
        out = tmp_path / f"recorder{len(made)}"
        out.mkdir()
        config = write_config(out, pbx, replace(Settings(), **changes))
        recorder = Recorder(pbx, out, config, [PrivateKey.load(out / "demo.key")])
        made.append(recorder)
        if start:
            await recorder.start()
        return recorder

    try:
        yield make
    finally:
        for recorder in made:
            if recorder.running:
                await recorder.stop()
        pbx.clean()
        assert agents.alive(), "a sipp agent died during the test"


@pytest.fixture
async def recorder(make_recorder: MakeRecorder) -> Recorder:
    """``callrec serve`` with the default test settings (implied consent, ulaw)."""
    return await make_recorder()


# --- helpers for tests ------------------------------------------------------------


async def wait_until(probe: Callable[[], Any], within: float, what: str) -> Any:
    """Poll ``probe`` until it returns something truthy; AssertionError after ``within`` s."""
    deadline = time.monotonic() + within
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.1)


def assert_ok(*reports: CallReport) -> None:
    """Every DPO check of every call passed (the whole table when one did not)."""
    assert all(r.ok for r in reports), "\n" + table(reports)


def line_of(report: CallReport) -> dict[str, Any]:
    assert report.record is not None, "\n" + table([report])
    return report.record
