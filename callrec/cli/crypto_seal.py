"""``callrec seal``: encrypt plaintext recordings that already exist on disk.

Admins migrating old recordings (the WAVs MixMonitor wrote) seal them to the
same recipients as live calls. Only public keys are needed, unless
``--shred`` is asked for: removing the original is irreversible, so it waits
until the sealed copy has been decrypted again and matches sample for
sample, which takes a private key (``--verify-key``). A structural check
without the key cannot tell a good copy from garbage that happens to have
the right segment count, so it is not offered.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callrec import __version__
from callrec.cli.common import (
    EXIT_ERROR,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    escape,
    load_private_keys,
    load_signing_key,
    private_dir,
    warn,
    worst,
)
from callrec.errors import CallrecError, FormatError
from callrec.spool import SEALED_SUFFIX, file_sha256, os_reason

if TYPE_CHECKING:
    from callrec.crypto.keys import PrivateKey, PublicKey
    from callrec.crypto.signing import SigningKey
    from callrec.recording import RecordingWriter

SEALED_FROM_FILE = "sealed-from-file"
# Sample frames per block read from the source: one second at 16 kHz, so a
# long recording never sits in memory whole.
BLOCK_FRAMES = 16000
_HASH_CHUNK = 1 << 20

SHRED_NOTE = (
    "--shred removes each original only after its sealed copy was decrypted again "
    "with --verify-key and gave back the same samples: this host needs no private key "
    "for sealing, but nothing short of decrypting proves the copy is good. Use a key "
    "that exists only for this migration, and remove it afterwards. The original is "
    "overwritten with zeros before it is unlinked; on SSDs, journaling or "
    "copy-on-write file systems that cannot be guaranteed to erase the old blocks."
)


@dataclass(frozen=True)
class _Sealed:
    source: Path
    sealed: Path
    source_sha256: str
    payload_sha256: str
    metadata: dict[str, Any]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "seal",
        description="Seal WAV/FLAC/OGG (any file libsndfile reads; stored as 16-bit PCM "
        "at its own rate and channel count) and raw Asterisk files (.ulaw/.alaw: 8 kHz "
        "G.711, kept as it is; .sln: 8 kHz and .sln16: 16 kHz 16-bit little-endian) into "
        "NAME.crec beside them, or into --out DIR. The first metadata record names the "
        "source file and its SHA-256. No plaintext is written anywhere.",
        epilog=SHRED_NOTE,
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="plaintext recordings")
    p.add_argument(
        "--to", action="append", required=True, metavar="PUB", help="recipient public key"
    )
    p.add_argument("--out", metavar="DIR", help="folder for the .crec files")
    p.add_argument("--shred", action="store_true", help="remove each original once verified")
    p.add_argument(
        "--verify-key",
        action="append",
        metavar="KEY",
        help="decrypt each sealed copy with this private key to check it (needed by --shred)",
    )
    p.add_argument(
        "--sign-key",
        metavar="KEY",
        help="sign each sealed file with this signing key (NAME.sign.key from "
        "`callrec keygen --signing`), so `verify --signer` can tell who sealed it",
    )
    p.add_argument(
        "--passphrase-file", metavar="F", help="passphrase of --verify-key and --sign-key"
    )
    p.set_defaults(func=_seal)


def _seal(args: argparse.Namespace) -> int:
    from callrec.crypto.keys import PublicKey

    if args.shred and not args.verify_key:
        warn("seal", "--shred needs --verify-key KEY (see `callrec seal --help`)")
        return EXIT_USAGE
    recipients = [PublicKey.load(Path(p)) for p in args.to]
    signer = load_signing_key(args.sign_key, args) if args.sign_key else None
    verify_keys = load_private_keys(args.verify_key, args) if args.verify_key else []
    out_dir = private_dir(Path(args.out)) if args.out else None
    codes = []
    for name in args.files:
        src = Path(name)
        codes.append(_seal_and_check(src, recipients, out_dir, verify_keys, args.shred, signer))
    return worst(codes)


def _seal_and_check(
    src: Path,
    recipients: list[PublicKey],
    out_dir: Path | None,
    verify_keys: list[PrivateKey],
    shred: bool,
    signer: SigningKey | None = None,
) -> int:
    try:
        sealed = seal_file(src, recipients, out_dir or src.parent, signer)
    except CallrecError as exc:
        warn("seal", f"{escape(str(src))}: {escape(str(exc))}")
        return EXIT_ERROR
    except OSError as exc:
        warn("seal", f"{escape(str(src))}: {escape(os_reason(exc))}")
        return EXIT_ERROR
    signed = f" (signed by {signer.fingerprint})" if signer is not None else ""
    print(f"sealed {escape(str(src))} -> {escape(str(sealed.sealed))}{signed}")
    if not verify_keys:
        return EXIT_OK
    try:
        check_sealed(sealed, verify_keys)
    except CallrecError as exc:
        warn("seal", f"{escape(str(sealed.sealed))}: verification failed, original kept: {exc}")
        return EXIT_INVALID
    print(f"verified {escape(str(sealed.sealed))}")
    if shred:
        return _shred(sealed)
    return EXIT_OK


def seal_file(
    src: Path, recipients: list[PublicKey], directory: Path, signer: SigningKey | None = None
) -> _Sealed:
    """Seal one plaintext recording into ``directory/<stem>.crec``, signed by ``signer``."""
    from callrec.audio import read_audio_blocks
    from callrec.clock import iso_utc
    from callrec.recording import Codec, RecordingWriter

    final = directory / f"{src.stem}{SEALED_SUFFIX}"
    if final.exists():
        raise CliError(f"refusing to overwrite {final}")
    source_sha = file_sha256(src)
    info, blocks = read_audio_blocks(src, BLOCK_FRAMES)
    metadata = {
        "type": SEALED_FROM_FILE,
        "source": src.name,
        "sha256": source_sha,
        "source_size": src.stat().st_size,
        "source_mtime": iso_utc(src.stat().st_mtime),
        "source_format": info.kind,
        "source_subtype": info.subtype,
        "sample_rate": info.sample_rate,
        "channels": info.channels,
        "software": f"callrec {__version__}",
    }
    if not info.exact:
        warn("seal", f"{escape(str(src))}: {info.subtype} samples are stored as 16-bit PCM")
    writer = RecordingWriter.create(
        directory,
        recipients,
        codec=Codec(info.codec),
        sample_rate=info.sample_rate,
        channels=info.channels,
        signer=signer,
    )
    payload_hash = hashlib.sha256()
    try:
        writer.write_metadata(metadata)
        for block in blocks:
            payload_hash.update(block)
            writer.write_audio(block)
        writer.close(final_path=final)
    except BaseException:
        _abandon(writer)
        raise
    return _Sealed(src, final, source_sha, payload_hash.hexdigest(), metadata)


def _abandon(writer: RecordingWriter) -> None:
    # The .part holds only ciphertext, but an unfinished copy must not be
    # mistaken later for a recording cut short by a crash.
    writer.abort()
    with contextlib.suppress(OSError):
        writer.path.unlink()


def check_sealed(sealed: _Sealed, keys: list[PrivateKey]) -> None:
    """Decrypt ``sealed`` again: complete, same first record, same audio bytes."""
    from callrec.recording import AudioFrame, MetadataFrame, RecordingReader

    payload_hash = hashlib.sha256()
    first: dict[str, Any] | None = None
    with RecordingReader(sealed.sealed, keys) as reader:
        for frame in reader.frames():
            if isinstance(frame, AudioFrame):
                payload_hash.update(frame.payload)
            elif isinstance(frame, MetadataFrame) and first is None:
                first = frame.record
        if str(reader.verdict) != "complete":
            raise FormatError(f"{reader.verdict}: {reader.error}")
    if first != sealed.metadata:
        raise FormatError("the first metadata record differs from the one written")
    if payload_hash.hexdigest() != sealed.payload_sha256:
        raise FormatError("the decrypted audio differs from the source")


def _shred(sealed: _Sealed) -> int:
    src = sealed.source
    try:
        if file_sha256(src) != sealed.source_sha256:
            warn("seal", f"{escape(str(src))} changed while it was sealed; kept")
            return EXIT_ERROR
        _overwrite_and_unlink(src)
    except OSError as exc:
        warn("seal", f"{escape(str(src))}: cannot remove: {os_reason(exc)}")
        return EXIT_ERROR
    print(f"removed {escape(str(src))}")
    return EXIT_OK


def _overwrite_and_unlink(path: Path) -> None:
    size = path.stat().st_size
    fd = os.open(path, os.O_WRONLY)
    try:
        zeros = bytes(min(size, _HASH_CHUNK))
        left = size
        while left > 0:
            left -= os.write(fd, zeros[: min(left, len(zeros))])
        os.fsync(fd)
    finally:
        os.close(fd)
    path.unlink()
