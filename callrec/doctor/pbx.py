"""What the doctor asks Asterisk over ARI: reachable, version and modules, app name, clock.

Only REST requests here, made as the config's ARI user: the doctor never
opens an events websocket under the recorder's app name, which would take
the app away from a running ``callrec serve`` (Asterisk gives an app to the
newest websocket). The media round trip, which needs events, runs under an
app name of its own (:mod:`callrec.doctor.media`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from callrec.ari.client import AriClient
from callrec.clock import Clock
from callrec.config_model import AriConfig
from callrec.doctor.procs import ServeProcess
from callrec.doctor.result import CheckName, CheckResult
from callrec.errors import AriAuthError, AriError, AriNotFound, AriUnavailable
from callrec.media.codecs import MediaFormatName

MAX_CLOCK_SKEW = 2.0  # seconds; evidence times and Asterisk's logs must agree
TESTED_MAJORS = (20, 22)

# What callrec needs loaded, and why (docs/OPERATIONS.md, "Wiring Asterisk").
REQUIRED_MODULES: tuple[tuple[str, str], ...] = (
    ("res_ari.so", "ARI itself"),
    ("res_ari_applications.so", "ARI application resources"),
    ("res_ari_asterisk.so", "ARI Asterisk resources (info, modules)"),
    ("res_ari_bridges.so", "bridges for calls and recordings"),
    ("res_ari_channels.so", "answer, originate, snoop, ExternalMedia"),
    ("res_ari_events.so", "the events websocket"),
    ("res_ari_playbacks.so", "stopping the disclosure"),
    ("res_http_websocket.so", "the events websocket"),
    ("res_stasis.so", "Stasis applications"),
    ("app_stasis.so", "Stasis() in the dialplan"),
    ("res_stasis_answer.so", "answering callers"),
    ("res_stasis_playback.so", "playing the prompts"),
    ("res_stasis_snoop.so", "snooping the caller for the recording"),
    ("chan_rtp.so", "ExternalMedia channels (the recorded audio)"),
    ("res_rtp_asterisk.so", "RTP to the recorder"),
    ("bridge_simple.so", "two-party bridges"),
    ("bridge_softmix.so", "bridges of three or more"),
    ("format_wav.so", "playing the prompts' WAV files"),
)
# The translator Asterisk needs for each ExternalMedia format (recording.format).
CODEC_MODULES: dict[MediaFormatName, str] = {
    "ulaw": "codec_ulaw.so",
    "alaw": "codec_alaw.so",
    "slin16": "codec_resample.so",
}
OPTIONAL_MODULES: tuple[tuple[str, str], ...] = (
    ("res_agi.so", "AGI() in the dialplan (the FastAGI front end)"),
)
_LOAD_HINT = "add `load => NAME` to modules.conf and run `module load NAME` on the Asterisk CLI"
_MAJOR = re.compile(r"(?<![\d.])(\d+)\.\d+")


async def check_ari(client: AriClient, ari: AriConfig) -> tuple[CheckResult, str]:
    """ARI answers this user; also returns Asterisk's version ("" when unknown)."""
    try:
        info = await client.asterisk_info(only="system")
    except AriAuthError:
        return CheckResult.fail(
            CheckName.ARI,
            f"{ari.url}: user {ari.user!r} refused (401): wrong user or password",
            "ari.user and ari.password (or CALLREC_ARI_PASSWORD) must match a user "
            "in Asterisk's ari.conf",
        ), ""
    except AriUnavailable as exc:
        return CheckResult.fail(
            CheckName.ARI,
            str(exc),
            "is Asterisk running, with its HTTP server at ari.url? "
            "(http.conf: enabled = yes, bindaddr, bindport)",
        ), ""
    except AriError as exc:
        return CheckResult.fail(
            CheckName.ARI,
            f"{ari.url}: {exc.status} {exc.message}",
            "ARI must be enabled (ari.conf: enabled = yes; res_ari.so loaded)",
        ), ""
    system = info.raw.get("system")
    version = str(system.get("version", "")) if isinstance(system, dict) else ""
    shown = f": Asterisk {version}" if version else ""
    return CheckResult.ok(CheckName.ARI, f"{ari.url} answers user {ari.user!r}{shown}"), version


def major_version(version: str) -> int | None:
    """``22`` from ``22.11.0`` or ``GIT-22-22.0.0-pre1-541-g69535d4837``; None if none."""
    found = _MAJOR.search(version)
    return int(found.group(1)) if found else None


async def check_asterisk(client: AriClient, version: str, fmt: MediaFormatName) -> CheckResult:
    """The Asterisk version, and every module callrec needs loaded."""
    name = f"Asterisk {version or '(version unknown)'}"
    try:
        modules = await client.list_modules()
    except (AriError, AriUnavailable) as exc:
        return CheckResult.fail(
            CheckName.ASTERISK,
            f"{name}: cannot list its modules: {exc}",
            "res_ari_asterisk.so must be loaded",
        )
    loaded = {m.name for m in modules if m.status.lower() == "running"}
    need = [*REQUIRED_MODULES, (CODEC_MODULES[fmt], f"ExternalMedia format {fmt}")]
    absent = [(mod, why) for mod, why in need if mod not in loaded]
    absent_optional = [(mod, why) for mod, why in OPTIONAL_MODULES if mod not in loaded]
    missing = [f"{mod}: {why}" for mod, why in absent]
    optional = [f"{mod}: {why}" for mod, why in absent_optional]
    data = {"version": version, "missing": [mod for mod, _ in absent + absent_optional]}
    if missing:
        return CheckResult.fail(
            CheckName.ASTERISK,
            f"{name}: {len(missing)} module(s) callrec needs not loaded",
            _LOAD_HINT,
            details=tuple(missing + optional),
            data=data,
        )
    major = major_version(version)
    if major is not None and major < min(TESTED_MAJORS):
        return CheckResult.warn(
            CheckName.ASTERISK,
            f"{name}: older than callrec is tested with",
            f"callrec is tested with Asterisk {' and '.join(map(str, TESTED_MAJORS))}",
            data=data,
        )
    if optional:
        return CheckResult.warn(
            CheckName.ASTERISK,
            f"{name}: every module the Stasis app needs is loaded, not all of AGI's",
            _LOAD_HINT,
            details=tuple(optional),
            data=data,
        )
    return CheckResult.ok(
        CheckName.ASTERISK,
        f"{name}: all {len(need) + len(OPTIONAL_MODULES)} modules callrec needs loaded",
        data=data,
    )


async def check_app(
    client: AriClient, app: str, config: Path, serves: Sequence[ServeProcess]
) -> CheckResult:
    """No other process holds the Stasis app name (``GET /applications/NAME``)."""
    ours = [s for s in serves if s.runs(config) is not False]
    pids = ", ".join(str(s.pid) for s in ours)
    try:
        held = await client.get_application(app)
    except AriNotFound:
        if ours:
            return CheckResult.warn(
                CheckName.STASIS_APP,
                f"{app!r} is not registered, though callrec serve runs (pid {pids})",
                "serve is not connected to ARI: see its log",
            )
        return CheckResult.ok(CheckName.STASIS_APP, f"{app!r} is free: no process holds it")
    except (AriError, AriUnavailable) as exc:
        return CheckResult.fail(CheckName.STASIS_APP, f"cannot ask for {app!r}: {exc}", "")
    if ours:
        return CheckResult.ok(
            CheckName.STASIS_APP, f"{app!r} is held by the running callrec serve (pid {pids})"
        )
    inside = f"{len(held.channel_ids)} channel(s), {len(held.bridge_ids)} bridge(s) in it"
    return CheckResult.fail(
        CheckName.STASIS_APP,
        f"{app!r} is registered by another process ({inside})",
        "another recorder or ARI client uses this name: stop it, or give callrec a name "
        "of its own (ari.app and Stasis(NAME) in the dialplan); Asterisk also keeps a "
        "crashed recorder's app while its calls last",
    )


async def asterisk_sounds(client: AriClient) -> dict[str, frozenset[str]] | None:
    """Sound id -> the languages Asterisk finds it in, in its own sounds folder.

    None when Asterisk cannot say (``res_ari_sounds.so`` not loaded). The
    doctor reads ``prompts.sounds_dir`` itself; this is how it learns whether
    that is the folder Asterisk plays from.
    """
    try:
        found = await client.list_sounds()
    except (AriError, AriUnavailable):
        return None
    return {sound.id: sound.languages for sound in found}


def asterisk_seconds(stamp: str) -> float:
    """Unix seconds of Asterisk's ``2026-12-07T03:00:07.431+0000``; ValueError if not that."""
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


async def check_clock(client: AriClient, clock: Clock) -> CheckResult:
    """Asterisk's clock (``/asterisk/ping``) agrees with this host's within 2 s."""
    before = clock.wall()
    try:
        stamp = await client.ping()
    except (AriError, AriUnavailable) as exc:
        return CheckResult.fail(CheckName.CLOCK, f"cannot ask Asterisk the time: {exc}", "")
    after = clock.wall()
    try:
        theirs = asterisk_seconds(stamp or "")
    except ValueError:
        return CheckResult.warn(
            CheckName.CLOCK,
            f"Asterisk's ping gave no time to compare ({stamp!r})",
            "keep both hosts on NTP",
        )
    offset = theirs - (before + after) / 2
    way = "ahead of" if offset > 0 else "behind"
    summary = f"Asterisk is {abs(offset):.3f} s {way} this host (+/- {(after - before) / 2:.3f})"
    data = {"offset_seconds": round(offset, 3)}
    if abs(offset) > MAX_CLOCK_SKEW:
        return CheckResult.fail(
            CheckName.CLOCK,
            f"{summary}: more than {MAX_CLOCK_SKEW:g} s",
            "run NTP on both hosts (chrony, systemd-timesyncd): evidence times and "
            "Asterisk's logs must agree",
            data=data,
        )
    return CheckResult.ok(CheckName.CLOCK, summary, data=data)
