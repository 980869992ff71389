"""Sealed recordings: the writer the recorders feed and the reader the CLI uses.

:mod:`callrec.recording.writer` encrypts framed audio into ``<id>.crec.part``
and seals it as ``<id>.crec``; :mod:`callrec.recording.reader` verifies a
recording segment by segment and judges it (docs/FORMAT.md, "Verdicts").
This package re-exports what callers use, so ``from callrec.recording import
RecordingWriter, verify`` keeps working.
"""

from __future__ import annotations

from callrec.crypto.format import Header, Recipient
from callrec.crypto.frames import (
    AudioFrame,
    Frame,
    GapFrame,
    MetadataFrame,
    PauseFrame,
    ResumeFrame,
)
from callrec.media.codecs import Codec
from callrec.recording.reader import (
    RecordingReader,
    RecordingTooLong,
    TinkExport,
    Verdict,
    VerifyResult,
    export_tink,
    is_sealed_name,
    judge,
    read_header,
    verify,
)
from callrec.recording.writer import RecordingWriter, SealInfo

__all__ = [
    "AudioFrame",
    "Codec",
    "Frame",
    "GapFrame",
    "Header",
    "MetadataFrame",
    "PauseFrame",
    "Recipient",
    "RecordingReader",
    "RecordingTooLong",
    "RecordingWriter",
    "ResumeFrame",
    "SealInfo",
    "TinkExport",
    "Verdict",
    "VerifyResult",
    "export_tink",
    "is_sealed_name",
    "judge",
    "read_header",
    "verify",
]
