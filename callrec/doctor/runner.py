"""The whole checklist, in order; a check that cannot run says why (``skip``).

Checks that need Asterisk run only when ARI answers; checks that need a
section of the config run only when that section loaded. Nothing here
changes anything outside the doctor's own probe file, UDP port and the
bridge, channel and playback of its media round trip (removed again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from callrec.ari.client import AriClient
from callrec.clock import SYSTEM_CLOCK, Clock
from callrec.doctor import fastagi, keys, pbx, prompts, storage
from callrec.doctor.loading import DoctorConfig, check_config, read_config
from callrec.doctor.media import MediaSettings, check_media
from callrec.doctor.procs import ServeProcess, serve_processes
from callrec.doctor.result import CheckName, CheckResult, Status


@dataclass(frozen=True)
class Options:
    """``--min-free`` (bytes the spool must keep free) and how long to wait for Asterisk."""

    min_free: int = storage.DEFAULT_MIN_FREE
    wait: float = 5.0


async def run_doctor(
    path: Path,
    options: Options | None = None,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> list[CheckResult]:
    """Every check of the config at ``path``, in :class:`CheckName` order."""
    options = options or Options()
    dc = read_config(path, env)
    serves = serve_processes()
    pbx_results, seen = await _pbx_checks(dc, options, serves, clock)
    found = {r.name: r for r in pbx_results}
    for result in _local_checks(dc, options, serves, seen):
        found[result.name] = result
    found[CheckName.CONFIG] = check_config(dc)
    return [found[name] for name in CheckName]


def _needs(dc: DoctorConfig, name: CheckName, *sections: str) -> CheckResult | None:
    why = dc.unusable(*sections)
    return None if why is None else CheckResult.skip(name, why)


def _local_checks(
    dc: DoctorConfig, options: Options, serves: list[ServeProcess], seen: Sounds
) -> list[CheckResult]:
    this = [s for s in serves if s.runs(dc.path) is not False]
    return [
        _needs(dc, CheckName.PROMPTS, "prompts") or prompts.check_prompts(dc, seen),
        _needs(dc, CheckName.SPOOL, "recording") or storage.check_spool(dc),
        _needs(dc, CheckName.SPOOL_SPACE, "recording")
        or storage.check_space(dc, options.min_free),
        _needs(dc, CheckName.LEFTOVERS, "recording")
        or storage.check_leftovers(dc, serving=bool(this)),
        _needs(dc, CheckName.AUDIT_LOG, "privacy") or storage.check_audit_log(dc),
        _needs(dc, CheckName.RECIPIENTS, "recording") or keys.check_recipients(dc),
        _needs(dc, CheckName.SIGNING_KEY, "recording") or keys.check_signing_key(dc),
        _needs(dc, CheckName.PSEUDONYM_KEY, "privacy") or keys.check_pseudonym_key(dc),
        _needs(dc, CheckName.FASTAGI, "agi") or fastagi.check_fastagi(dc, serves),
    ]


_ARI_CHECKS = (CheckName.ARI, CheckName.ASTERISK, CheckName.STASIS_APP, CheckName.CLOCK)
# Sound id -> the languages Asterisk finds it in (None: Asterisk was not asked).
Sounds = dict[str, frozenset[str]] | None


async def _pbx_checks(
    dc: DoctorConfig, options: Options, serves: list[ServeProcess], clock: Clock
) -> tuple[list[CheckResult], Sounds]:
    why = dc.unusable("ari")
    if why is not None:
        return [CheckResult.skip(name, why) for name in (*_ARI_CHECKS, CheckName.MEDIA)], None
    cfg = dc.config
    async with AriClient(
        cfg.ari.url, cfg.ari.user, cfg.ari.password, cfg.ari.app, timeout=options.wait
    ) as client:
        reach, version = await pbx.check_ari(client, cfg.ari)
        if reach.status is Status.FAIL:
            unreachable = "ARI does not answer (see the ari line)"
            rest = (*_ARI_CHECKS[1:], CheckName.MEDIA)
            return [reach, *(CheckResult.skip(name, unreachable) for name in rest)], None
        seen = await pbx.asterisk_sounds(client)
        results = [
            reach,
            _needs(dc, CheckName.ASTERISK, "recording")
            or await pbx.check_asterisk(client, version, cfg.recording.format),
            await pbx.check_app(client, cfg.ari.app, dc.path, serves),
            await pbx.check_clock(client, clock),
        ]
    media = _needs(dc, CheckName.MEDIA, "recording", "prompts") or await check_media(
        cfg, MediaSettings(wait=options.wait)
    )
    return [*results, media], seen
