"""Turn ``callrec testcall`` arguments (and an optional config) into options."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from callrec.audio import load_mono
from callrec.crypto.keys import PrivateKey
from callrec.errors import AudioFileError, CallrecError
from callrec.evidence import prompt_seconds
from callrec.media.signals import speech_like
from callrec.testcall.harness import RATE, Options
from callrec.testcall.scenarios import Scenario, builtin_scenarios

if TYPE_CHECKING:
    from callrec.config import Config

DEFAULT_DISCLOSURE = 12.0


class OptionsError(CallrecError):
    """Missing or contradictory testcall options."""


def config_for(args: argparse.Namespace) -> Config | None:
    """The ``--config`` file, loaded once for the scenarios and the options."""
    if not args.config:
        return None
    from callrec.config import load_config

    return load_config(Path(args.config))


def scenarios_for(args: argparse.Namespace, cfg: Config | None) -> dict[str, Scenario]:
    grace = args.grace
    digit = args.optout_digit
    disclosure = args.disclosure
    if cfg is not None:
        grace = cfg.consent.grace if grace is None else grace
        digit = cfg.consent.optout_digit if digit is None else digit
        if disclosure is None:
            disclosure = prompt_seconds(cfg.prompt_for(args.exten, "", "disclosure").path_wav)
    return builtin_scenarios(
        disclosure=DEFAULT_DISCLOSURE if disclosure is None else disclosure,
        grace=2.0 if grace is None else grace,
        hangup_at=args.hangup_at,
        digit_at=args.digit_at,
        optout_digit=digit or "2",
        talk=args.talk,
        long_talk=args.long,
    )


def load_options(
    args: argparse.Namespace, cfg: Config | None, keys: list[PrivateKey], password: str | None
) -> Options:
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
    mono = load_mono(path, RATE)
    if len(mono) == 0:
        raise AudioFileError(str(path), "no audio in the file")
    return mono
