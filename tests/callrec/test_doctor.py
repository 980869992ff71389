"""``callrec doctor`` against the ARI simulator: all ok on a good setup, each FAIL on a broken one.

The simulator is a real ARI server on loopback; the doctor's media round trip
gets real RTP from it. Most tests call the checklist in-process (the
simulator runs in the test's event loop); the exit codes and the printed
list are checked through the real command in a subprocess.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from ari_app.demo import write_keys
from callrec.ari.sim import AriSimulator
from callrec.cli import main
from callrec.doctor.media import DOCTOR_APP
from callrec.doctor.result import CheckName, CheckResult, Status, all_passed, render_text
from callrec.doctor.runner import Options, run_doctor

ROOT = Path(__file__).resolve().parents[2]
USER, PASSWORD = "callrec", "doctor-test-secret"
PROMPTS = ("disclosure", "not-available", "recording-unavailable")


@pytest.fixture(scope="module")
def installed_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The three prompts in English, every format, installed as an admin does."""
    folder = tmp_path_factory.mktemp("prompts")
    sounds = folder / "sounds"
    rng = np.random.default_rng(3)
    for name in PROMPTS:
        source = folder / f"{name}.wav"
        sf.write(str(source), 0.3 * rng.standard_normal(8000), 8000, subtype="PCM_16")
        args = ["prompts", "add", name, "--lang", "en", str(source), "--sounds-dir", str(sounds)]
        assert main(args) == 0
    return sounds


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Setup:
    """A recorder's files (keys, prompts, spool, audit folder) and its config."""

    root: Path
    sounds: Path
    pub: Path
    pseudonym: Path
    spool: Path
    agi_port: int
    url: str = ""
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "callrec.toml"

    def write(self, **changes: str) -> Path:
        """The config, with ``section_key="toml value"`` changes (``ari_password='"x"'``)."""
        values = {
            "ari_url": f'"{self.url}"',
            "ari_user": f'"{USER}"',
            "ari_password": f'"{PASSWORD}"',
            "recording_spool": f'"{self.spool}"',
            "recording_format": '"ulaw"',
            "prompts_sounds_dir": f'"{self.sounds}"',
            "consent_grace": "1.0",
            **changes,
        }
        self.config.write_text(
            f"""\
[ari]
url = {values["ari_url"]}
user = {values["ari_user"]}
password = {values["ari_password"]}
app = "callrec"

[recording]
spool = {values["recording_spool"]}
recipients = ["{self.pub}"]
format = {values["recording_format"]}
media_host = "127.0.0.1"

[privacy]
pseudonym_key = "{self.pseudonym}"
audit_log = "{self.root / "log" / "audit.jsonl"}"

[catalog]
url = "sqlite:///{self.root / "catalog.sqlite3"}"

[consent]
grace = {values["consent_grace"]}

[prompts]
sounds_dir = {values["prompts_sounds_dir"]}
languages = ["en"]

[destinations]
default = {{ endpoint = "PJSIP/agent", timeout = 10 }}

[agi]
listen = "127.0.0.1:{self.agi_port}"
""",
            encoding="utf-8",
        )
        return self.config


@pytest.fixture
def setup(tmp_path: Path, installed_prompts: Path) -> Setup:
    sounds = tmp_path / "sounds"
    shutil.copytree(installed_prompts, sounds)
    pub, _, pseudonym = write_keys(tmp_path)
    spool = tmp_path / "spool"
    spool.mkdir(mode=0o700)
    (tmp_path / "log").mkdir()
    return Setup(tmp_path, sounds, pub, pseudonym, spool, free_tcp_port())


@pytest.fixture
async def sim(setup: Setup) -> AsyncIterator[AriSimulator]:
    async with AriSimulator(user=USER, password=PASSWORD, sounds_dir=setup.sounds) as s:
        setup.url = s.url
        setup.write()
        yield s


async def doctor(setup: Setup, min_free: int = 1) -> dict[CheckName, CheckResult]:
    results = await run_doctor(setup.config, Options(min_free=min_free), env={})
    return {r.name: r for r in results}


def statuses(found: dict[CheckName, CheckResult]) -> dict[str, str]:
    return {str(name): str(r.status) for name, r in found.items()}


def not_ok(found: dict[CheckName, CheckResult]) -> dict[str, str]:
    return {k: v for k, v in statuses(found).items() if v != "ok"}


async def run_cli(*args: str) -> tuple[int, str, str]:
    """``callrec ARGS`` as a subprocess (the simulator keeps serving meanwhile)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callrec",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")},
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_nothing_left(sim: AriSimulator) -> None:
    """The doctor removed its bridge, ExternalMedia channel and playback again."""
    assert sim.channels == []
    assert sim.bridges == []
    assert sim.engine.playbacks == {}


# --- a good setup --------------------------------------------------------------


async def test_good_setup_prints_every_check_ok_and_exits_0(
    setup: Setup, sim: AriSimulator
) -> None:
    code, out, err = await run_cli("doctor", "--config", str(setup.config))
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    assert lines[0] == f"callrec doctor: {setup.config}"
    for check in CheckName:
        assert re.search(rf"^ok +{re.escape(check)} ", out, re.MULTILINE), (check, out)
    assert lines[-1] == f"all checks passed ({len(CheckName)} ok)"
    # Every prompt with the SHA-256 the consent evidence will record for it.
    for name in PROMPTS:
        wav = setup.sounds / "en" / "callrec" / f"{name}.wav"
        assert f"en callrec/{name}: sha256 {sha256(wav)}" in out
    assert PASSWORD not in out
    assert_nothing_left(sim)


async def test_json_output_has_every_check_with_its_figures(
    setup: Setup, sim: AriSimulator
) -> None:
    code, out, _ = await run_cli("doctor", "--config", str(setup.config), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert report["config"] == str(setup.config)
    checks = {c["name"]: c for c in report["checks"]}
    assert list(checks) == [str(n) for n in CheckName]
    assert {c["status"] for c in checks.values()} == {"ok"}
    space = checks["spool-space"]
    assert 0 < space["free_bytes"] <= space["total_bytes"]
    assert space["total_bytes"] == shutil.disk_usage(setup.spool).total
    assert checks["media"]["packets"] >= 10
    assert checks["fastagi"]["state"] == "free"
    shas = {p["sound"]: p["sha256"] for p in checks["prompts"]["prompts"]}
    assert shas["callrec/disclosure"] == sha256(setup.sounds / "en/callrec/disclosure.wav")
    assert PASSWORD not in out


async def test_media_round_trip_receives_the_prompt_from_the_announced_address(
    setup: Setup, sim: AriSimulator
) -> None:
    found = await doctor(setup)
    media = found[CheckName.MEDIA]
    assert media.status is Status.OK, media
    assert "RTP packets of ulaw audio from Asterisk reached 127.0.0.1:" in media.summary
    assert "played sound:callrec/disclosure (en) into its bridge" in media.details[0]
    # Under an app of the doctor's own, gone with its websocket; nothing left behind.
    assert not sim.app_active("callrec")
    assert not any(app.startswith(DOCTOR_APP) for app in _listed_apps(sim))
    assert_nothing_left(sim)


def _listed_apps(sim: AriSimulator) -> list[str]:
    return [a for a in sim.engine.known_apps if sim.app_active(a) or a in sim.engine.declared_apps]


# --- each broken setup ---------------------------------------------------------


async def test_wrong_password_fails_ari_says_so_and_exits_1(
    setup: Setup, sim: AriSimulator
) -> None:
    wrong = "not-the-password"
    setup.write(ari_password=f'"{wrong}"')
    code, out, _ = await run_cli("doctor", "--config", str(setup.config))
    assert code == 1
    assert re.search(
        r"^FAIL +ari +.*user 'callrec' refused \(401\): wrong user or password", out, re.M
    )
    assert "hint: ari.user and ari.password (or CALLREC_ARI_PASSWORD) must match" in out
    for name in ("asterisk", "stasis-app", "clock", "media"):
        assert re.search(rf"^skip +{name} +not checked: ARI does not answer", out, re.M), out
    assert wrong not in out
    assert out.splitlines()[-1].startswith("NOT all checks passed")


async def test_ari_refused_names_where(setup: Setup, sim: AriSimulator) -> None:
    url = f"http://127.0.0.1:{free_tcp_port()}"
    setup.write(ari_url=f'"{url}"')
    found = await doctor(setup)
    ari = found[CheckName.ARI]
    assert ari.status is Status.FAIL
    assert f"{url} unreachable (connection refused)" in ari.summary


async def test_a_missing_prompt_format_fails_prompts_naming_it(
    setup: Setup, sim: AriSimulator
) -> None:
    (setup.sounds / "en" / "callrec" / "not-available.ulaw").unlink()
    found = await doctor(setup)
    assert not_ok(found) == {"prompts": "FAIL"}
    prompts = found[CheckName.PROMPTS]
    assert prompts.summary.startswith("1 of 3 prompt(s) incomplete")
    assert "en callrec/not-available: missing or unreadable .ulaw" in prompts.details
    assert "callrec prompts add" in prompts.hint
    assert not all_passed(found.values())


async def test_a_missing_disclosure_fails_prompts_and_the_media_round_trip(
    setup: Setup, sim: AriSimulator
) -> None:
    for path in (setup.sounds / "en" / "callrec").glob("disclosure.*"):
        path.unlink()
    found = await doctor(setup)
    assert not_ok(found) == {"prompts": "FAIL", "media": "FAIL"}
    media = found[CheckName.MEDIA]
    assert (
        media.summary == "Asterisk could not play sound:callrec/disclosure (en): no audio to send"
    )
    assert_nothing_left(sim)


async def test_prompts_outside_the_folder_asterisk_plays_from_fail(
    setup: Setup, sim: AriSimulator
) -> None:
    # Installed into a folder Asterisk does not play from: it finds none of them.
    elsewhere = setup.root / "elsewhere"
    shutil.move(setup.sounds, elsewhere)
    setup.sounds.mkdir()
    setup.write(prompts_sounds_dir=f'"{elsewhere}"')
    found = await doctor(setup)
    assert not_ok(found) == {"prompts": "FAIL", "media": "FAIL"}
    prompts = found[CheckName.PROMPTS]
    assert prompts.summary == f"3 of 3 prompt(s) in {elsewhere} but not where Asterisk looks"
    assert prompts.details[0].endswith(", but Asterisk does not find it")
    assert "astdatadir" in prompts.hint


async def test_spool_that_is_a_file_fails_spool(setup: Setup, sim: AriSimulator) -> None:
    spool_file = setup.root / "spool-file"
    spool_file.write_text("not a folder")
    setup.write(recording_spool=f'"{spool_file}"')
    found = await doctor(setup)
    spool = found[CheckName.SPOOL]
    assert spool.status is Status.FAIL
    assert f"{spool_file} is a file, not a folder" in spool.details[0]
    assert found[CheckName.CONFIG].status is Status.OK  # shown on its own line, once


async def test_spool_without_the_room_asked_for_fails(setup: Setup, sim: AriSimulator) -> None:
    free = shutil.disk_usage(setup.spool).free
    found = await doctor(setup, min_free=free * 4)
    space = found[CheckName.SPOOL_SPACE]
    assert space.status is Status.FAIL
    assert "under the" in space.summary and "the doctor asks for" in space.summary


async def test_leftover_part_files_warn_and_still_pass(setup: Setup, sim: AriSimulator) -> None:
    incoming = setup.spool / "incoming"
    incoming.mkdir()
    (incoming / "0123456789abcdef.crec.part").write_bytes(b"crash")
    found = await doctor(setup)
    leftovers = found[CheckName.LEFTOVERS]
    assert (leftovers.status, leftovers.summary) == (Status.WARN, "1 .crec.part file(s)")
    assert "callrec verify" in leftovers.hint
    assert all_passed(found.values())


async def test_world_readable_pseudonym_key_fails(setup: Setup, sim: AriSimulator) -> None:
    setup.pseudonym.chmod(0o644)
    found = await doctor(setup)
    assert not_ok(found) == {"pseudonym-key": "FAIL"}
    key = found[CheckName.PSEUDONYM_KEY]
    assert "other users can read or write it (mode 0644)" in key.details[0]
    assert f"chmod 600 {setup.pseudonym}" in key.hint


async def test_group_readable_pseudonym_key_warns(setup: Setup, sim: AriSimulator) -> None:
    setup.pseudonym.chmod(0o640)
    found = await doctor(setup)
    key = found[CheckName.PSEUDONYM_KEY]
    assert key.status is Status.WARN
    assert "has access to it (mode 0640" in key.summary


async def test_recipient_key_that_is_not_a_key_fails(setup: Setup, sim: AriSimulator) -> None:
    setup.pub.write_text("not a key\n")
    found = await doctor(setup)
    recipients = found[CheckName.RECIPIENTS]
    assert recipients.status is Status.FAIL
    assert recipients.summary == "recording.recipients (nothing can be recorded): not usable"
    assert "not a callrec public key" in recipients.details[0]


async def test_app_held_by_another_process_fails_and_is_left_to_it(
    setup: Setup, sim: AriSimulator
) -> None:
    params = {"app": "callrec", "api_key": f"{USER}:{PASSWORD}"}
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"{sim.url}/ari/events", params=params) as other,
    ):
        found = await doctor(setup)
        assert sim.app_active("callrec")  # the doctor did not take it over
        assert not other.closed
    app = found[CheckName.STASIS_APP]
    assert app.status is Status.FAIL
    assert (
        app.summary
        == "'callrec' is registered by another process (0 channel(s), 0 bridge(s) in it)"
    )
    assert "ari.app" in app.hint


async def test_media_fails_when_asterisk_refuses_the_format(setup: Setup) -> None:
    async with AriSimulator(
        user=USER, password=PASSWORD, sounds_dir=setup.sounds, media_formats={"alaw"}
    ) as sim:
        setup.url = sim.url
        setup.write()
        found = await doctor(setup)
        assert_nothing_left(sim)
    media = found[CheckName.MEDIA]
    assert media.status is Status.FAIL
    assert media.summary.startswith(
        "Asterisk refused an ExternalMedia channel (ulaw to 127.0.0.1:"
    )
    assert media.summary.endswith(
        ": 500 An internal error prevented this request from being handled"
    )


async def test_a_module_not_loaded_fails_asterisk_naming_it(
    setup: Setup, sim: AriSimulator
) -> None:
    sim.unload_module("chan_rtp.so")
    found = await doctor(setup)
    asterisk = found[CheckName.ASTERISK]
    assert asterisk.status is Status.FAIL
    assert asterisk.summary == "Asterisk 22.11.0: 1 module(s) callrec needs not loaded"
    assert asterisk.details == ("chan_rtp.so: ExternalMedia channels (the recorded audio)",)
    assert "modules.conf" in asterisk.hint


class _AheadClock:
    """This host's clock, 5 s ahead of the simulator's."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time() + 5.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def test_clock_apart_from_asterisk_fails(setup: Setup, sim: AriSimulator) -> None:
    results = await run_doctor(setup.config, Options(), env={}, clock=_AheadClock())
    clock = {r.name: r for r in results}[CheckName.CLOCK]
    assert clock.status is Status.FAIL
    assert re.match(r"Asterisk is [45]\.\d{3} s behind this host", clock.summary), clock.summary
    assert "NTP" in clock.hint


async def test_fastagi_port_taken_by_another_program_fails(
    setup: Setup, sim: AriSimulator
) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", setup.agi_port))
        squatter.listen()
        found = await doctor(setup)
    agi = found[CheckName.FASTAGI]
    assert agi.status is Status.FAIL
    assert agi.summary.endswith(f"(pid {os.getpid()})")
    assert agi.summary.startswith(f"127.0.0.1:{setup.agi_port} is taken by ")


async def test_a_bad_value_fails_config_and_the_other_sections_are_still_checked(
    setup: Setup, sim: AriSimulator
) -> None:
    setup.write(consent_grace="-1")
    found = await doctor(setup)
    assert not_ok(found) == {"config": "FAIL"}
    assert found[CheckName.CONFIG].details == ("consent.grace: must be >= 0, not -1",)


async def test_no_password_skips_what_needs_ari(setup: Setup, sim: AriSimulator) -> None:
    setup.write(ari_password='""')
    found = await doctor(setup)
    assert not_ok(found) == {
        "config": "FAIL",
        "ari": "skip",
        "asterisk": "skip",
        "stasis-app": "skip",
        "clock": "skip",
        "media": "skip",
    }
    assert found[CheckName.ARI].summary == (
        "not checked: [ari] of the config has problems (see the config line)"
    )
    text = "\n".join(render_text(list(found.values())))
    assert "ari.password: no ARI password" in text


async def test_doctor_beside_a_running_serve_sees_its_app_and_fastagi_port(
    setup: Setup, sim: AriSimulator
) -> None:
    log = (setup.root / "serve.log").open("wb")
    serve = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "callrec",
        "serve",
        "--config",
        str(setup.config),
        cwd=ROOT,
        stdout=log,
        stderr=asyncio.subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if not k.startswith("CALLREC_")},
    )
    try:
        await sim.wait_for(lambda: sim.app_active("callrec"), timeout=30)
        await _wait_listening(setup.agi_port)
        found = await doctor(setup)
    finally:
        serve.terminate()
        await serve.wait()
        log.close()
    assert not_ok(found) == {}, [found[CheckName(n)] for n in not_ok(found)]
    assert found[CheckName.STASIS_APP].summary == (
        f"'callrec' is held by the running callrec serve (pid {serve.pid})"
    )
    assert found[CheckName.FASTAGI].summary == (
        f"127.0.0.1:{setup.agi_port} is served by the running callrec serve (pid {serve.pid})"
    )


async def _wait_listening(port: int) -> None:
    for _ in range(300):
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}")


def test_a_missing_config_fails_and_skips_every_other_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope.toml"
    monkeypatch.setenv("CALLREC_CONFIG", str(missing))  # the default without --config
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"callrec doctor: {missing}"
    assert out[1] == f"FAIL  config         {missing}: 1 problem(s)"
    assert (
        "(file): file does not exist (hint: write one: callrec config template > FILE)" in out[2]
    )
    skipped = [line.split()[1] for line in out if line.startswith("skip ")]
    assert skipped == [str(n) for n in CheckName if n is not CheckName.CONFIG]
    assert out[-1] == f"NOT all checks passed (1 FAIL, {len(CheckName) - 1} skip)"


def test_min_free_takes_sizes_an_admin_writes(capsys: pytest.CaptureFixture[str]) -> None:
    from callrec.cli.doctor_cmds import size

    assert [size(t) for t in ("1024", "500M", "2G", "1GiB")] == [1024, 500 << 20, 2 << 30, 1 << 30]
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--min-free", "lots"])
    assert exited.value.code == 2
    assert "argument --min-free: not a size: 'lots' (e.g. 500M, 1G, 2147483648)" in (
        capsys.readouterr().err
    )


# --- what the simulator answers, as the real PBX does -----------------------------


async def test_simulated_bridge_playback_plays_into_the_bridge_like_asterisk(
    setup: Setup, sim: AriSimulator
) -> None:
    """POST /bridges/{id}/play: an announcer the bridge never lists; its members hear it."""
    from callrec.ari.client import AriClient
    from callrec.ari.events import ChannelVarset, Connected, PlaybackFinished

    async with AriClient(sim.url, USER, PASSWORD, "probe") as client:
        events = client.events()
        assert isinstance(await anext(events), Connected)
        await client.create_bridge(bridge_id="b")
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        sink.settimeout(5)
        target = f"127.0.0.1:{sink.getsockname()[1]}"
        em = await client.external_media(app="probe", external_host=target, format="ulaw")
        await sim.wait_for(lambda: sim.app_active("probe") and bool(sim.channels[0].in_stasis))
        await client.add_channels("b", [em.id])
        playback = await client.play_on_bridge("b", "sound:callrec/disclosure", "pb", "en")
        assert (playback.id, playback.target_uri) == ("pb", "bridge:b")
        packet = sink.recv(2048)
        assert (len(packet), packet[1] & 0x7F) == (172, 0)  # 20 ms of ulaw, PT 0
        assert (await client.get_bridge("b")).raw["channels"] == [em.id]
        seen = []
        async for item in events:
            seen.append(item)
            if isinstance(item, PlaybackFinished):
                assert item.playback.state == "done"
                break
        peers = [
            e.value for e in seen if isinstance(e, ChannelVarset) and e.variable == "BRIDGEPEER"
        ]
        assert peers == ["Announcer/ARI-00000000;2"]
        await client.hangup(em.id)
        await client.destroy_bridge("b")
        sink.close()
