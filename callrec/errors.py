"""One rooted error hierarchy for callrec.

Every error a user can meet derives from :class:`CallrecError` and carries
structured fields, so a caller can act on ``err.segment`` or ``err.key`` and
the CLI can print one clear line. Modules subclass these; they never raise
bare ``ValueError`` for bad input.
"""

from __future__ import annotations


class CallrecError(Exception):
    """Root of every error callrec raises on purpose."""


# --- configuration -------------------------------------------------------


class ConfigError(CallrecError):
    """A configuration problem, located as ``file:key``."""

    def __init__(self, file: str, key: str, message: str, hint: str = "") -> None:
        self.file = file
        self.key = key
        self.message = message
        self.hint = hint
        text = f"{file}:{key}: {message}"
        if hint:
            text += f" (hint: {hint})"
        super().__init__(text)


# --- keys and sealed recordings -----------------------------------------


class KeyFileError(CallrecError):
    """A key file that cannot be used (unreadable, wrong type, bad passphrase)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


class WrongPassphraseError(KeyFileError):
    """The passphrase does not open this private key."""


class FormatError(CallrecError):
    """A ``.crec`` file is malformed or fails authentication.

    ``segment`` is the 0-based segment index where the problem was found, or
    ``None`` when it is in the container header; ``field`` names the header
    field for header errors.
    """

    def __init__(
        self, message: str, *, segment: int | None = None, field: str | None = None
    ) -> None:
        self.message = message
        self.segment = segment
        self.field = field
        where = ""
        if field is not None:
            where = f"header field {field}: "
        elif segment is not None:
            where = f"segment {segment}: "
        super().__init__(where + message)


class TruncatedError(FormatError):
    """The stream ends before a valid final segment (a crash or a cut)."""


class NoMatchingKeyError(FormatError):
    """None of the given private keys is a recipient of this recording."""


class WriterClosedError(CallrecError):
    """Writing to a recording that is closed, or from a forked child."""


# --- storage ------------------------------------------------------------


class SpoolError(CallrecError):
    """The spool cannot be written (missing, not a folder, full)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"spool {path}: {message}")


# --- media --------------------------------------------------------------


class MediaError(CallrecError):
    """Bad media input (RTP packet, audio file)."""


class RtpError(MediaError):
    """An RTP packet that cannot be parsed."""


class AudioFileError(MediaError):
    """An audio file that cannot be used, with the reason."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        self.message = message
        super().__init__(f"{path}: {message}")


# --- ARI ----------------------------------------------------------------


class AriError(CallrecError):
    """An ARI request failed; ``status`` and ``message`` are Asterisk's."""

    def __init__(self, method: str, path: str, status: int, message: str) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.message = message
        super().__init__(f"ARI {method} {path}: {status} {message}")


class AriNotFound(AriError):
    """404: the channel, bridge or playback no longer exists."""


class AriConflict(AriError):
    """409/422: the channel is not in the Stasis application."""


class AriAuthError(AriError):
    """401: wrong ARI user or password."""


class AriUnavailable(CallrecError):
    """Asterisk cannot be reached (refused, 503 not booted, socket dropped)."""


# --- calls --------------------------------------------------------------


class CallHangup(CallrecError):
    """The channel hung up; raised inside a call session to unwind it."""

    def __init__(self, channel_id: str, cause: int | None = None) -> None:
        self.channel_id = channel_id
        self.cause = cause
        super().__init__(f"channel {channel_id} hung up (cause {cause})")


class RecordingUnavailable(CallrecError):
    """Recording cannot run (no key, spool unwritable, media failure)."""


# --- AGI ----------------------------------------------------------------


class AgiError(CallrecError):
    """An AGI command failed; ``command`` is the command sent."""

    def __init__(self, command: str, message: str) -> None:
        self.command = command
        self.message = message
        super().__init__(f"AGI {command!r}: {message}")


class AgiInvalidCommand(AgiError):
    """510 Invalid or unknown command."""


class AgiDeadChannel(AgiError):
    """511 Command not permitted on a dead channel."""


class AgiUsageError(AgiError):
    """520 Invalid command syntax."""


class AgiHangup(AgiError):
    """The channel hung up (HANGUP line, result=-1, or the socket closed)."""
