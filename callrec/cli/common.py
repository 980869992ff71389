"""What every ``callrec`` subcommand shares: exit codes, errors, key loading, output.

The command modules import this, never the package ``callrec.cli`` itself:
the package loads them, so they must not need it back.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from callrec import logutil
from callrec.config_path import CONFIG_ENV, DEFAULT_CONFIG, default_config_path
from callrec.errors import CallrecError, FormatError, KeyFileError
from callrec.spool import PART_SUFFIX, SEALED_SUFFIX, os_reason

if TYPE_CHECKING:
    from callrec.crypto.keys import PrivateKey
    from callrec.crypto.signing import SigningKey
    from callrec.dpo.desk import Desk
    from callrec.recording import Verdict
    from callrec.recording.origin import Origin

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_TRUNCATED = 3
EXIT_INVALID = 4

_SEVERITY = {EXIT_OK: 0, EXIT_ERROR: 1, EXIT_TRUNCATED: 2, EXIT_INVALID: 3, EXIT_USAGE: 4}

PASSPHRASE_ENV = "CALLREC_KEY_PASSPHRASE"  # noqa: S105 (a variable name, not a secret)

Handler = Callable[[argparse.Namespace], int]
# argparse's subparsers action is generic only to type checkers (a string at run time).
Subcommands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def worst(codes: Iterable[int]) -> int:
    """The exit code that wins over several files: 4 > 3 > 1 > 0."""
    return max(codes, key=lambda c: _SEVERITY.get(c, 1), default=EXIT_OK)


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
    from callrec.crypto.limits import MAX_KEY_FILE
    from callrec.user_files import read_bounded

    try:
        data = read_bounded(path, MAX_KEY_FILE)  # not /dev/zero, not a FIFO
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
    from callrec.crypto.keys import PrivateKey, read_key_file

    keys = []
    passphrase: bytes | None = None
    for name in paths:
        data = read_key_file(name, missing="no such key file")
        if PrivateKey.is_encrypted(data):
            if passphrase is None:
                passphrase = given_passphrase(args) or _prompt_passphrase(name)
            keys.append(PrivateKey.from_bytes(data, name, passphrase))
        else:
            keys.append(PrivateKey.from_bytes(data, name))
    return keys


def _prompt_passphrase(path: str) -> bytes:
    if not sys.stdin.isatty():
        raise KeyFileError(
            path,
            f"the key is passphrase-protected: give --passphrase-file or set {PASSPHRASE_ENV}",
        )
    return getpass.getpass(f"Passphrase for {path}: ").encode()


def load_signing_key(path: str, args: argparse.Namespace) -> SigningKey:
    """A recorder signing key (``seal --sign-key``), asking for its passphrase if it has one."""
    from callrec.crypto.keys import read_key_file
    from callrec.crypto.signing import SigningKey

    data = read_key_file(path, "signing key", missing="no such key file")
    if not SigningKey.is_encrypted(data):
        return SigningKey.from_bytes(data, path)
    return SigningKey.from_bytes(data, path, given_passphrase(args) or _prompt_passphrase(path))


# --- origin: who signed a recording ---------------------------------------------------

NOT_TRUSTED = "not signed by a trusted recorder"
ORIGIN_NOT_CHECKED = (
    "origin not checked: a file made by anyone holding a recipient's public key verifies "
    "too; give --signer PUB (the recorder's NAME.sign.pub) to accept only its files"
)


def add_signer_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--signer",
        action="append",
        metavar="PUB",
        help="a trusted recorder's signing public key (NAME.sign.pub; repeat for several): "
        f"a file not signed by one of them is rejected with exit 4 ({NOT_TRUSTED})",
    )


Trusted = frozenset[bytes] | None  # key ids of the --signer recorders; None: not checked
UNPROVEN = (
    "never sealed, so never signed: its header names a trusted recorder, which proves nothing"
)
ACCEPT_UNSEALED = "--accept-unsealed"


def load_signers(paths: Sequence[str] | None) -> Trusted:
    """Key ids of the trusted recorders, or None without --signer (origin not checked)."""
    if not paths:
        return None
    from callrec.crypto.signing import VerifyKey

    return frozenset(VerifyKey.load(Path(p)).key_id for p in paths)


@dataclass(frozen=True)
class OriginCheck:
    """What the CLI says about a file's origin: a one-word label and, if rejected, why."""

    label: str  # trusted:<fp>, signed:<fp>, untrusted:<fp>, unsigned, missing, bad, -
    rejected: str = ""  # "not signed by a trusted recorder (...)" when --signer rejects it

    def apply(self, verdict: str, error: str, code: int) -> tuple[str, str, int]:
        """A row's verdict, error and exit code once the origin is judged."""
        if not self.rejected or code == EXIT_INVALID:
            return verdict, error, code
        return "untrusted", self.rejected, EXIT_INVALID


def check_origin(
    origin: Origin | None,
    trusted: frozenset[bytes] | None,
    sealed: bool,
    *,
    accept_unsealed: bool = True,
) -> OriginCheck:
    """Judge ``origin`` against the ``--signer`` keys (None: not checked).

    A ``.crec.part`` was never sealed, so it cannot carry a signature: when
    its header names a trusted recorder, ``verify`` and ``inspect`` report it
    TRUNCATED (exit 3) rather than rejected. But that header names whoever
    its writer said, and anyone with a recipient's public key can write one:
    a command that writes the audio out (``decrypt``) passes
    ``accept_unsealed=False`` and rejects it unless the user asked for it.
    """
    from callrec.recording.origin import Signature

    if origin is None:
        return OriginCheck("-")
    state, fingerprint = origin.signature, origin.fingerprint
    if state is Signature.SIGNED:
        kind = "signed" if trusted is None else "untrusted"
        label = f"{'trusted' if origin.trusted(trusted or ()) else kind}:{fingerprint}"
    else:
        label = "bad" if state is Signature.INVALID else str(state)
    if trusted is None or origin.trusted(trusted):
        return OriginCheck(label)
    named = origin.signer is not None and origin.signer.key_id in trusted
    if state is Signature.MISSING and named and not sealed:
        if accept_unsealed:
            return OriginCheck(label)
        return OriginCheck(
            label, f"{NOT_TRUSTED} ({UNPROVEN}; {ACCEPT_UNSEALED} writes it anyway)"
        )
    why = {
        Signature.UNSIGNED: "the file is unsigned",
        Signature.MISSING: "it has no signature: never sealed",
        Signature.INVALID: "" if origin.error is None else origin.error.message,
    }.get(state, f"signed by {fingerprint}")
    return OriginCheck(label, f"{NOT_TRUSTED} ({why})")


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
    for suffix in (PART_SUFFIX, SEALED_SUFFIX):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return path.stem


# --- the config file ----------------------------------------------------------------

# Where the config is without --config: callrec.config_path, shared with callrec-agi.
CONFIG_DEFAULT = f"default: ${CONFIG_ENV}, else {DEFAULT_CONFIG}"


def add_config_option(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--config FILE``, which defaults to ``$CALLREC_CONFIG``, else ``/etc/callrec``."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE", help=f"callrec.toml ({CONFIG_DEFAULT})"
    )


def config_file(given: Path | str | None, how: str = "--config FILE") -> Path:
    """The config to read: ``given``, else ``$CALLREC_CONFIG``, else the default path.

    A file the user named goes to the config loader as it is, which says
    what is wrong with it. A default that does not exist is one line naming
    the path that was tried and how to choose another (``how``: the option).
    """
    if given is not None:
        return Path(given)
    return _default_config(how)


def config_file_if_any(given: Path | str | None) -> Path | None:
    """Like :func:`config_file` for commands that work without a config.

    The built-in default counts only when it exists; ``$CALLREC_CONFIG``
    was set on purpose, so a missing file there is still an error.
    """
    if given is not None or os.environ.get(CONFIG_ENV):
        return config_file(given)
    return DEFAULT_CONFIG if _exists(DEFAULT_CONFIG) else None


def _default_config(how: str) -> Path:
    path = default_config_path()
    source = f"from ${CONFIG_ENV}" if os.environ.get(CONFIG_ENV) else "the default"
    if not _exists(path):
        raise CliError(
            f"no config file at {escape(str(path))} ({source}): give {how} or set {CONFIG_ENV}"
        )
    return path


def _exists(path: Path) -> bool:
    """False only when nothing is there: an unreadable file is the loader's to report."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


# --- command groups, and what the DPO's commands share -------------------------------


def add_command_group(sub: Subcommands, name: str, description: str) -> Subcommands:
    """``callrec NAME SUBCOMMAND``: NAME's parser, whose subcommand must be given."""
    parser = sub.add_parser(name, description=description)
    return parser.add_subparsers(dest=f"{name}_command", metavar="SUBCOMMAND", required=True)


def add_reason_option(
    parser: argparse.ArgumentParser, *, required: bool, help: str, metavar: str | None = None
) -> None:
    """``--reason``, checked as it is parsed: a bad reason is a usage error (exit 2)."""
    from callrec.dpo.reason import reason_value

    parser.add_argument(
        "--reason", required=required, type=reason_value, metavar=metavar, help=help
    )


def open_desk(
    args: argparse.Namespace, keys: Sequence[PrivateKey] = (), *, need_catalog: bool = True
) -> Desk:
    """What a DPO command works with (:class:`callrec.dpo.desk.Desk`), from ``--config``."""
    from callrec.dpo.desk import Desk

    return Desk.open(config_file(args.config), keys, need_catalog=need_catalog)


# --- many recordings at once: folders and a progress counter ---------------------------

RECORDING_SUFFIXES = (SEALED_SUFFIX, PART_SUFFIX)
_NO_RECORDINGS = f"a folder with no {SEALED_SUFFIX} or {PART_SUFFIX} files in it"


@dataclass(frozen=True)
class Input:
    """One recording a bulk command works on.

    ``root`` is the folder named on the command line it was found in (None:
    the file was named itself); ``problem`` says why a folder gave nothing.
    """

    path: Path
    root: Path | None = None
    problem: str = ""

    def file(self) -> Path:
        """The path to open; CliError when it is no recording file."""
        if self.problem:
            raise CliError(f"{escape(str(self.path))}: {self.problem}")
        return existing_file(self.path)


def recordings(names: Sequence[str]) -> list[Input]:
    """Each name as given, a folder replaced by every recording below it, sorted.

    A folder's sealed ``.crec`` and unfinished ``.crec.part`` files count,
    nothing else in it. Symbolic links to folders are not followed, so a
    loop cannot keep the command busy forever. A folder that gives nothing
    (empty, unreadable) stays in the list with its problem, so it is reported.
    """
    found: list[Input] = []
    for name in names:
        path = Path(name)
        found.extend(_in_folder(path) if path.is_dir() else [Input(path)])
    return found


def _in_folder(root: Path) -> list[Input]:
    found: list[Input] = []
    errors: list[OSError] = []
    for folder, subfolders, files in os.walk(root, onerror=errors.append):
        subfolders.sort()
        base = Path(folder)
        found.extend(Input(base / f, root) for f in sorted(files) if is_recording_name(f))
    found.extend(
        Input(Path(exc.filename or root), root, f"cannot read the folder: {os_reason(exc)}")
        for exc in errors
    )
    return found or [Input(root, root, _NO_RECORDINGS)]


def is_recording_name(name: str) -> bool:
    """``call.crec`` or ``call.crec.part``, with a stem."""
    return any(name.endswith(s) and len(name) > len(s) for s in RECORDING_SUFFIXES)


def existing_file(path: Path) -> Path:
    """``path`` if it is a file: a missing input is a usage slip, not a damaged recording."""
    if not path.exists():
        raise CliError(f"{escape(str(path))}: no such file")
    if path.is_dir():
        raise CliError(f"{escape(str(path))}: a folder, not a recording file")
    if not path.is_file():
        raise CliError(f"{escape(str(path))}: not a regular file")
    return path


def error_code(exc: BaseException, src: Path) -> int:
    """The exit code of a file that could not be read: its verdict if it is damaged, else 1."""
    if isinstance(exc, FormatError):
        from callrec.recording import is_sealed_name, judge

        return exit_code(judge(exc, is_sealed_name(src)))
    return EXIT_ERROR


class Progress:
    """``verifying 3/120`` on stderr while a bulk command works, only on a terminal.

    Piped or redirected, stderr gets nothing extra: a script or a log reads
    it. Whatever the command prints while the counter shows must call
    :meth:`clear` first, or the line lands behind the counter.
    """

    def __init__(self, verb: str, total: int) -> None:
        self._verb = verb
        self._total = total
        self._on = sys.stderr.isatty()
        self._shown = False

    def show(self, done: int) -> None:
        if self._on:
            print(f"\r{self._verb} {done}/{self._total}", end="", file=sys.stderr, flush=True)
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
            self._shown = False
