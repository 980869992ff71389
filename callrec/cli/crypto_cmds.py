"""Key and sealed-recording commands: keygen, seal, decrypt, verify, inspect, export-tink.

The recording host only ever needs public keys (``keygen`` and ``seal --to``),
plus its own signing key (``keygen --signing``), which proves a recording
or audit line came from it; every command that reads audio or metadata back
takes the private key with ``--key``. ``keygen`` lives here; ``seal`` in
:mod:`.crypto_seal`, ``verify`` in :mod:`.verify_cmds`, the other readers in
:mod:`.crypto_read`. Heavy imports (numpy, soundfile) happen inside the
handlers so ``callrec --help`` stays quick.
"""

from __future__ import annotations

import argparse
import getpass
import re
from pathlib import Path

from callrec.cli.common import (
    EXIT_OK,
    PASSPHRASE_ENV,
    CliError,
    escape,
    given_passphrase,
    private_dir,
)
from callrec.spool import os_reason, write_file_atomic

_KEY_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


def _keygen(args: argparse.Namespace) -> int:
    name: str = args.name
    if not _KEY_NAME.match(name):
        raise CliError(
            f"--name must be letters, digits, '.', '-' or '_' (not starting with '.'), "
            f"not '{escape(name)}'"
        )
    if args.signing and args.pq:
        raise CliError("--pq is for recipient keys; a signing key is Ed25519")
    out = private_dir(Path(args.out))
    pub_path, key_path = (out / f"{name}{suffix}" for suffix in _suffixes(args.signing))
    for path in (pub_path, key_path):
        if path.exists():
            raise CliError(f"refusing to overwrite {path}: remove it or choose another --name")
    passphrase = _keygen_passphrase(args)
    made = _signing_pair if args.signing else _recipient_pair
    public_text, fingerprint, where = made(key_path, passphrase, args.pq)
    try:
        write_file_atomic(pub_path, public_text.encode("ascii"), 0o644, replace=False)
    except OSError as exc:
        raise CliError(f"cannot write {pub_path}: {os_reason(exc)}") from exc
    protected = "passphrase-protected" if passphrase else "NOT passphrase-protected"
    print(f"public key:  {pub_path}")
    print(f"private key: {key_path} ({protected}; {where})")
    print(f"fingerprint: {fingerprint}")
    return EXIT_OK


def _recipient_pair(key_path: Path, passphrase: bytes | None, pq: bool) -> tuple[str, str, str]:
    """A new recipient key saved at ``key_path``: (public key text, fingerprint, advice)."""
    from callrec.crypto.keys import PrivateKey

    key = PrivateKey.generate(pq=pq)
    key.save(key_path, passphrase)
    return key.public_key().to_text(), key.fingerprint, "keep it off the recording host"


def _signing_pair(key_path: Path, passphrase: bytes | None, _pq: bool) -> tuple[str, str, str]:
    """A new recorder signing key saved at ``key_path``: (public key text, fingerprint, advice)."""
    from callrec.crypto.signing import SigningKey

    key = SigningKey.generate()
    key.save(key_path, passphrase)
    where = "the recorder's own: keep it on the recording host only"
    if passphrase:
        where = "for `callrec seal --sign-key`; a recorder needs one made without"
    return key.public_key().to_text(), key.fingerprint, where


def _suffixes(signing: bool) -> tuple[str, str]:
    """(public, private) file name endings: NAME.pub/.key, or NAME.sign.pub/.sign.key."""
    from callrec.crypto.signing import PRIVATE_SUFFIX, PUBLIC_SUFFIX

    if signing:
        return PUBLIC_SUFFIX, PRIVATE_SUFFIX
    return ".pub", ".key"


def _keygen_passphrase(args: argparse.Namespace) -> bytes | None:
    if args.ask_passphrase and not args.passphrase_file:
        first = getpass.getpass("New passphrase: ")
        if not first:
            raise CliError("empty passphrase")
        if getpass.getpass("Repeat passphrase: ") != first:
            raise CliError("the passphrases do not match")
        return first.encode()
    return given_passphrase(args)


# --- registration --------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add keygen."""
    p = sub.add_parser(
        "keygen",
        description="Create NAME.pub (give it to the recording host) and NAME.key (0600; "
        "keep it elsewhere: it decrypts every recording sealed to NAME.pub). With "
        "--signing: NAME.sign.key (0600, for [recording] signing_key on the recording "
        "host; made without a passphrase) and NAME.sign.pub (for verify --signer).",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the two files")
    p.add_argument("--name", default="callrec", help="file name stem (default: callrec)")
    p.add_argument("--pq", action="store_true", help="post-quantum hybrid ML-KEM-768+X25519")
    p.add_argument(
        "--signing", action="store_true", help="a recorder's Ed25519 signing key pair instead"
    )
    p.add_argument(
        "--passphrase-file",
        metavar="F",
        help=f"protect the private key with the passphrase in F (or set ${PASSPHRASE_ENV})",
    )
    p.add_argument("--ask-passphrase", action="store_true", help="prompt for a passphrase")
    p.set_defaults(func=_keygen)
