"""What a reader accepts from a file it did not write: one table of bounds.

A ``.crec`` or a key file may come from anywhere (a copy handed over, a file
found on a share, one made with nothing but a public key), and authentication
proves only that someone holding a public key wrote it. So every size, count,
duration and cost in it is bounded before it can cost memory, time or disk.
The values are documented in docs/FORMAT.md, "Limits"; the writer refuses
what the reader would refuse, so a file callrec writes always reads back.
"""

from __future__ import annotations

from callrec.clock import LATEST_WALL
from callrec.errors import FormatError

MiB = 1 << 20

# Header. created_at is uint64 milliseconds; a date must be printable.
MAX_CREATED_AT_MS = int(LATEST_WALL * 1000)
# The highest rate any audio file format callrec writes (WAV, FLAC) takes;
# telephony uses 8-48 kHz. The channel count is a byte (1..255) already.
MAX_SAMPLE_RATE = 768_000

# Frames. An audio frame is one RTP payload or one block of a sealed file
# (16,000 sample frames: 8.2 MB at 255 channels of 16-bit audio).
MAX_AUDIO_FRAME = 16 * MiB
# Metadata is consent evidence, a summary, media-loss notes: kilobytes.
MAX_METADATA_FRAME = 1 * MiB
MAX_METADATA_TOTAL = 16 * MiB
MAX_METADATA_DEPTH = 32
# Who paused a recording ("agent-code", "control"): a short word after the time.
MAX_PAUSE_SOURCE = 32
# Audio, gaps and pauses (each rendered as silence): a recording longer than a
# week is not a call. The reader refuses more and the writer never writes
# more (a stuck channel's recording stops there and is sealed).
MAX_RECORDING_SECONDS = 7 * 24 * 3600
MAX_RECORDING_TEXT = f"{MAX_RECORDING_SECONDS // 86400} days"  # how errors name the limit

# After a segment fails, the reader looks this many segment indices either
# side for the one it holds (4 MiB of stream each way), not the whole file.
DIAGNOSE_DISTANCE = 1024

# Key files are one line of text; the hybrid public key is the longest (1.6 kB).
MAX_KEY_FILE = 64 * 1024
# scrypt cost N·r·p of a protected key: 2^21 is about a second on a laptop
# (8 x what callrec writes, 2^15 · 8 · 1), and at most 256 MiB of memory.
MAX_SCRYPT_WORK = 1 << 21


def longest_recording(sample_rate: int) -> int:
    """MAX_RECORDING_SECONDS in samples per channel: what reader and writer count against."""
    return MAX_RECORDING_SECONDS * sample_rate


def check_header_values(sample_rate: int, created_ms: int) -> None:
    """FormatError naming the header field whose value is beyond these limits.

    Called while the header is parsed, before any key: a header made with a
    recipient's public key authenticates whatever it says, so a date past
    the year 9999 or a rate no audio file can hold is refused before
    anything prints or renders it.
    """
    if created_ms > MAX_CREATED_AT_MS:
        raise FormatError(
            f"created_at is after the year 9999 ({created_ms // 1000} s since 1970)",
            field="created_at",
        )
    if sample_rate > MAX_SAMPLE_RATE:
        raise FormatError(
            f"sample rate {sample_rate} Hz is above {MAX_SAMPLE_RATE} Hz", field="sample_rate"
        )
