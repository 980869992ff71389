"""Key and sealed-recording commands: keygen, seal, decrypt, verify, inspect, export-tink.

The recording host only ever needs public keys (``keygen`` and ``seal --to``);
every command that reads audio or metadata back takes the private key with
``--key``. Heavy imports (numpy, soundfile) happen inside the handlers so
``callrec --help`` stays quick.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from callrec import logutil
from callrec.cli import EXIT_INVALID, EXIT_OK, EXIT_TRUNCATED
from callrec.errors import CallrecError, KeyError_
from callrec.spool import os_reason, write_file_atomic

if TYPE_CHECKING:
    from callrec.crypto.keys import PrivateKey
    from callrec.recording import Verdict

PASSPHRASE_ENV = "CALLREC_KEY_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)


class CliError(CallrecError):
    """A command-line problem with one file or option, printed as one line."""


# --- shared helpers ----------------------------------------------------------------


def escape(text: str) -> str:
    """``text`` safe for a terminal: backslash and non-printables escaped, repr-style.

    Strings from inside a recording (a caller ID, a file name) may be hostile:
    an escape sequence must not reach the terminal, a newline must not forge
    an output line, a bidi override must not reorder it. Quotes stay as they
    are: the CLI prints paths and messages unquoted.
    """
    return logutil.escape(text, quotes="")


def exit_code(verdict: Verdict | str | None) -> int:
    """The exit code of one recording's verdict (no verdict yet counts as invalid)."""
    return {"complete": EXIT_OK, "truncated": EXIT_TRUNCATED}.get(str(verdict), EXIT_INVALID)


def warn(command: str, message: str) -> None:
    print(f"callrec {command}: {message}", file=sys.stderr)


def read_passphrase_file(path: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise CliError(f"passphrase file {path}: {os_reason(exc)}") from exc
    # Editors and `echo` add a final newline that is not part of the passphrase.
    data = data.removesuffix(b"\n").removesuffix(b"\r")
    if not data:
        raise CliError(f"passphrase file {path} is empty")
    return data


def given_passphrase(args: argparse.Namespace) -> bytes | None:
    """The passphrase from --passphrase-file or the environment, if any."""
    if getattr(args, "passphrase_file", None):
        return read_passphrase_file(args.passphrase_file)
    env = os.environ.get(PASSPHRASE_ENV)
    if env:
        return env.encode()
    return None


def load_private_keys(paths: Sequence[str], args: argparse.Namespace) -> list[PrivateKey]:
    """Load every --key, asking for a passphrase only when a key needs one."""
    from callrec.crypto.keys import PrivateKey

    keys = []
    passphrase: bytes | None = None
    for name in paths:
        data = _read_key_file(name)
        if PrivateKey.is_encrypted(data):
            if passphrase is None:
                passphrase = given_passphrase(args) or _prompt_passphrase(name)
            keys.append(PrivateKey.from_bytes(data, name, passphrase))
        else:
            keys.append(PrivateKey.from_bytes(data, name))
    return keys


def _read_key_file(name: str) -> bytes:
    try:
        return Path(name).read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        raise KeyError_(name, "no such key file") from None
    except OSError as exc:
        raise KeyError_(name, f"cannot read private key: {os_reason(exc)}") from exc


def _prompt_passphrase(path: str) -> bytes:
    if not sys.stdin.isatty():
        raise KeyError_(
            path,
            f"the key is passphrase-protected: give --passphrase-file or set {PASSPHRASE_ENV}",
        )
    return getpass.getpass(f"Passphrase for {path}: ").encode()


def add_key_options(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    parser.add_argument(
        "--key",
        action="append",
        required=required,
        metavar="KEY",
        help="private key file (repeat to try several recipients' keys)",
    )
    parser.add_argument(
        "--passphrase-file",
        metavar="F",
        help=f"file holding the key's passphrase (else ${PASSPHRASE_ENV}, else a prompt)",
    )


def private_dir(path: Path) -> Path:
    """Create ``path`` (0700) if missing; refuse a non-folder."""
    if path.exists() and not path.is_dir():
        raise CliError(f"{escape(str(path))} exists and is not a folder")
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create folder {escape(str(path))}: {os_reason(exc)}") from None
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path``, mode 0600 from the first byte on."""
    from callrec.audio import open_private

    try:
        with os.fdopen(open_private(path), "wb") as f:
            f.write(data)
    except OSError as exc:
        raise CliError(f"cannot write {path}: {os_reason(exc)}") from exc


def recording_stem(path: Path) -> str:
    """``call.crec`` and ``call.crec.part`` both give ``call``."""
    name = path.name
    for suffix in (".crec.part", ".crec"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem


# --- keygen ------------------------------------------------------------------------


_KEY_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$")


def _keygen(args: argparse.Namespace) -> int:
    from callrec.crypto.keys import PrivateKey

    name: str = args.name
    if not _KEY_NAME.match(name):
        raise CliError(
            f"--name must be letters, digits, '.', '-' or '_' (not starting with '.'), "
            f"not '{escape(name)}'"
        )
    out = private_dir(Path(args.out))
    pub_path, key_path = out / f"{name}.pub", out / f"{name}.key"
    for path in (pub_path, key_path):
        if path.exists():
            raise CliError(f"refusing to overwrite {path}: remove it or choose another --name")
    passphrase = _keygen_passphrase(args)
    key = PrivateKey.generate(pq=args.pq)
    public = key.public_key()
    key.save(key_path, passphrase)
    try:
        write_file_atomic(pub_path, public.to_text().encode("ascii"), 0o644, replace=False)
    except OSError as exc:
        raise CliError(f"cannot write {pub_path}: {os_reason(exc)}") from exc
    protected = "passphrase-protected" if passphrase else "NOT passphrase-protected"
    print(f"public key:  {pub_path}")
    print(f"private key: {key_path} ({protected}; keep it off the recording host)")
    print(f"fingerprint: {public.fingerprint}")
    return EXIT_OK


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
    """Add keygen, seal, decrypt, verify, inspect and export-tink."""
    from callrec.cli import crypto_read, crypto_seal

    p = sub.add_parser(
        "keygen",
        help="create a recipient key pair",
        description="Create NAME.pub (give it to the recording host) and NAME.key (0600; "
        "keep it elsewhere: it decrypts every recording sealed to NAME.pub).",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder for the two files")
    p.add_argument("--name", default="callrec", help="file name stem (default: callrec)")
    p.add_argument("--pq", action="store_true", help="post-quantum hybrid ML-KEM-768+X25519")
    p.add_argument(
        "--passphrase-file",
        metavar="F",
        help=f"protect the private key with the passphrase in F (or set ${PASSPHRASE_ENV})",
    )
    p.add_argument("--ask-passphrase", action="store_true", help="prompt for a passphrase")
    p.set_defaults(func=_keygen)
    crypto_seal.register(sub)
    crypto_read.register(sub)
