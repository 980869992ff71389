"""Why a channel hung up, as Asterisk reports it in ARI events.

``ChannelDestroyed.cause`` (and a hard ``ChannelHangupRequest.cause``) is a
Q.850 cause; a soft ``ChannelHangupRequest`` (``soft: true``) carries
Asterisk's soft-hang-up flag in ``cause`` instead (trace README,
"cross-cutting"). The event fields stay plain ints, so a cause Asterisk adds
later still parses; compare them with these names.
"""

from __future__ import annotations

from enum import IntEnum


class HangupCause(IntEnum):
    """The Q.850 causes callrec tells apart (Asterisk's ``cause_txt`` in comments)."""

    NORMAL_CLEARING = 16  # "Normal Clearing"
    USER_BUSY = 17  # "User busy": SIP 486 (trace 04b)
    NO_USER_RESPONSE = 18  # "No user responding": SIP 408
    NO_ANSWER = 19  # "User alerting, no answer": SIP 480, the originate timeout (trace 04a)


class SoftHangup(IntEnum):
    """Asterisk's soft-hang-up flags, the ``cause`` of a soft ``ChannelHangupRequest``."""

    SHUTDOWN = 4  # ``core restart`` / ``core stop`` (trace 07)
    EXPLICIT = 32  # ``DELETE /channels/{id}``, whatever ``reason`` was given
