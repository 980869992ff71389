"""What a recording file says of itself without a key: header, size, signature.

The catalogue fills what an audit line does not tell (codec, rate, channels,
signature state) from the file's public header and signature record
(:func:`callrec.recording.origin.origin_of`): no private key is needed, so
the recorder and a rebuild can both do it. A file is named by a URI
(``file:///...``) so that object storage can come later.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from callrec.catalog.model import CatalogError
from callrec.crypto.stream import TAG_SIZE
from callrec.errors import FormatError
from callrec.recording.origin import origin_of, segment_count


@dataclass(frozen=True)
class FileFacts:
    """A recording file as found: what its header and signature record say."""

    recording_id: str
    size: int
    segments: int
    last_tag_sha256: str | None
    codec: str
    sample_rate: int
    channels: int
    created: datetime
    signature: str  # callrec.recording.origin.Signature value
    signer: str | None  # fingerprint of the key the header names


def file_uri(path: Path) -> str:
    """``file:///abs/path`` of a recording (percent-encoded where needed)."""
    return Path(os.path.abspath(path)).as_uri()


def uri_path(uri: str) -> Path:
    """The local path of a ``file:`` URI; :class:`CatalogError` for any other kind."""
    parts = urlsplit(uri)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        raise CatalogError(f"recording location {uri!r} is not a local file")
    return Path(unquote(parts.path))


def file_facts(path: Path) -> FileFacts | None:
    """The facts of the file at ``path``; None when it is not there or not a recording."""
    try:
        parsed, origin = origin_of(path)
        size = path.stat().st_size
        with open(path, "rb") as f:
            tag = os.pread(f.fileno(), TAG_SIZE, origin.stream_end - TAG_SIZE)
    except (FormatError, OSError):
        return None
    header = parsed.header
    stream = origin.stream_end - header.header_size
    return FileFacts(
        recording_id=header.recording_id,
        size=size,
        segments=segment_count(stream),
        last_tag_sha256=hashlib.sha256(tag).hexdigest() if len(tag) == TAG_SIZE else None,
        codec=str(header.codec),
        sample_rate=header.sample_rate,
        channels=header.channels,
        created=datetime.fromtimestamp(header.created_at, UTC),
        signature=str(origin.signature),
        signer=origin.fingerprint,
    )
