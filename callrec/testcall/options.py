"""Turn ``callrec testcall`` arguments (and an optional config) into options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import soundfile

from callrec.crypto.keys import PrivateKey
from callrec.errors import AudioFileError, CallrecError
from callrec.media.signals import speech_like
from callrec.testcall.harness import RATE, Options
from callrec.testcall.scenarios import Scenario, builtin_scenarios

if TYPE_CHECKING:
    from callrec.config import Config

DEFAULT_DISCLOSURE = 12.0


class OptionsError(CallrecError):
    """Missing or contradictory testcall options."""


def _config(args: argparse.Namespace) -> Config | None:
    if not args.config:
        return None
    from callrec.config import load_config

    return load_config(Path(args.config))


def scenarios_for(args: argparse.Namespace) -> dict[str, Scenario]:
    cfg = _config(args)
    grace = args.grace
    digit = args.optout_digit
    disclosure = args.disclosure
    if cfg is not None:
        grace = cfg.consent.grace if grace is None else grace
        digit = cfg.consent.optout_digit if digit is None else digit
        if disclosure is None:
            disclosure = _seconds(cfg.prompt_for(args.exten, "", "disclosure").path_wav)
    return builtin_scenarios(
        disclosure=DEFAULT_DISCLOSURE if disclosure is None else disclosure,
        grace=2.0 if grace is None else grace,
        hangup_at=args.hangup_at,
        digit_at=args.digit_at,
        optout_digit=digit or "2",
        talk=args.talk,
        long_talk=args.long,
    )


def _seconds(wav: Path) -> float | None:
    try:
        return float(soundfile.info(str(wav)).duration)
    except (OSError, RuntimeError):
        return None


def load_options(
    args: argparse.Namespace, keys: list[PrivateKey], password: str | None
) -> Options:
    cfg = _config(args)
    spool = Path(args.spool) if args.spool else None
    audit = Path(args.audit) if args.audit else None
    if cfg is not None:
        spool = spool or cfg.recording.spool
        audit = audit or cfg.privacy.audit_log
    if spool is None or audit is None:
        raise OptionsError("give --spool and --audit, or --config to read them from")
    return Options(
        target=args.target,
        exten=args.exten,
        spool=spool,
        audit_log=audit,
        keys=keys,
        audio=load_audio(Path(args.audio)) if args.audio else speech_like(8.0),
        user=args.user,
        password=password,
        local_ip=args.local_ip,
        wait=args.wait,
    )


def load_audio(path: Path) -> npt.NDArray[np.int16]:
    """Any soundfile-readable file as 8 kHz mono int16."""
    import soxr

    try:
        data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError) as exc:
        raise AudioFileError(str(path), f"cannot read audio: {exc}") from None
    mono = data.mean(axis=1)
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE)
    if len(mono) == 0:
        raise AudioFileError(str(path), "no audio in the file")
    return np.asarray(np.clip(mono * 32767, -32768, 32767), dtype=np.int16)
