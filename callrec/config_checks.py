"""Checks behind :mod:`callrec.config`: typed values out of TOML, files on disk.

Each value check returns ``(value, "", "")`` or ``(None, message, hint)``;
:class:`Reader` turns the failures into ``ConfigError`` problems at dotted
keys, so every problem of a file is reported at once.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import stat
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar, get_args

from callrec.config_model import PROMPT_KINDS, Config
from callrec.crypto.keys import PublicKey, load_pseudonym_key, read_key_file
from callrec.crypto.signing import SigningKey
from callrec.errors import ConfigError, KeyFileError
from callrec.prompts.names import LANGUAGE, SOUND
from callrec.user_files import describe

DIGITS = frozenset("0123456789*#")
_BARE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_HOST = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_HOST_PORT = re.compile(r"^(?:\[([0-9A-Fa-f:.]+)\]|([^:\[\]]+)):(\d{1,5})$")
_SIGNING_HINT = "create it with `callrec keygen --signing --out DIR --name NAME`"
_PSEUDONYM_HINT = "create one with: head -c32 /dev/urandom > FILE && chmod 600 FILE"
# Linux limits: a whole path (NUL included) and one name in it, in bytes.
PATH_MAX = 4096
NAME_MAX = 255


T = TypeVar("T")


def dotted(*parts: str) -> str:
    """A TOML dotted key, quoting the parts that are not bare keys."""
    return ".".join(p if _BARE_KEY.match(p) else '"' + p.replace('"', '\\"') + '"' for p in parts)


class Reader:
    """Collects problems while taking typed values out of TOML tables."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.base = path.parent
        self.problems: list[ConfigError] = []

    def problem(self, key: str, message: str, hint: str = "") -> None:
        self.problems.append(ConfigError(str(self.path), key, message, hint))

    def table(self, data: Mapping[str, Any], *keys: str) -> dict[str, Any]:
        value = data.get(keys[-1], {})
        if isinstance(value, dict):
            return value
        self.problem(dotted(*keys), f"must be a table, not {kind_of(value)}")
        return {}

    def unknown(self, table: Mapping[str, Any], allowed: tuple[str, ...], *where: str) -> None:
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]}?" if close else "known keys: " + ", ".join(allowed)
            self.problem(dotted(*where, key), "unknown key", hint)

    def take(
        self,
        table: Mapping[str, Any],
        key: tuple[str, ...],
        default: T,
        check: Callable[[Any], tuple[T | None, str, str]],
    ) -> T:
        if key[-1] not in table:
            return default
        value, message, hint = check(table[key[-1]])
        if value is None:
            self.problem(dotted(*key), message, hint)
            return default
        return value

    def choice(
        self, table: Mapping[str, Any], key: tuple[str, ...], default: str, literal: object
    ) -> Any:
        """A string out of a ``Literal`` type's values (typed by the caller's field)."""
        return self.take(table, key, default, choice_value(get_args(literal)))

    def path_key(self, table: Mapping[str, Any], key: tuple[str, ...], default: Path) -> Path:
        """A path key: checked by :func:`path_text`, ``~`` expanded, relative to the file."""
        return self.path_value(self.take(table, key, str(default), path_text))

    def path_value(self, raw: str) -> Path:
        try:
            p = Path(raw).expanduser()
        except RuntimeError:  # ~nosuchuser: path_text reports it
            p = Path(raw)
        return p if p.is_absolute() else self.base / p


def kind_of(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "a list", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def string_value(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and value:
        return value, "", ""
    if isinstance(value, str):
        return None, "must not be empty", ""
    return None, f"must be a string, not {kind_of(value)}", 'write it in quotes: key = "value"'


def number_value(
    low: float, *, above: bool = False
) -> Callable[[Any], tuple[float | None, str, str]]:
    def check(value: Any) -> tuple[float | None, str, str]:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"must be a number, not {kind_of(value)}", "e.g. 2.0"
        try:
            number = float(value)
        except OverflowError:  # an integer of hundreds of digits
            return None, "must be a finite number, not one this large", "e.g. 2.0"
        if not math.isfinite(number):
            return None, f"must be a finite number, not {number}", "e.g. 2.0"
        ok = number > low if above else number >= low
        if not ok:
            return None, f"must be {'>' if above else '>='} {low:g}, not {number:g}", ""
        return number, "", ""

    return check


def port_value(value: Any) -> tuple[int | None, str, str]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"must be an integer, not {kind_of(value)}", "0 picks any free port"
    if not 0 <= value <= 65535:
        return None, f"must be a port 0..65535, not {value}", ""
    return value, "", ""


def bool_value(value: Any) -> tuple[bool | None, str, str]:
    if isinstance(value, bool):
        return value, "", ""
    return None, f"must be true or false, not {kind_of(value)}", "TOML booleans are lower case"


# A retention longer than a century is a typo; past this, dates would leave the calendar.
MAX_DAYS = 36_500


def days_value(value: Any) -> tuple[int | None, str, str]:
    """A whole number of days, at least one, at most :data:`MAX_DAYS` (a retention period)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"must be a whole number of days, not {kind_of(value)}", "e.g. 90"
    if value < 1:
        return None, f"must be at least 1 day, not {value}", "e.g. 90"
    if value > MAX_DAYS:
        return None, f"must be at most {MAX_DAYS} days (100 years), not {value}", "e.g. 3650"
    return value, "", ""


def choice_value(choices: tuple[str, ...]) -> Callable[[Any], tuple[str | None, str, str]]:
    def check(value: Any) -> tuple[str | None, str, str]:
        if isinstance(value, str) and value in choices:
            return value, "", ""
        shown = repr(value) if isinstance(value, str) else kind_of(value)
        return None, f"must be one of {', '.join(choices)}, not {shown}", ""

    return check


def digit_value(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and len(value) == 1 and value in DIGITS:
        return value, "", ""
    shown = repr(value) if isinstance(value, str) else kind_of(value)
    return None, f"must be one DTMF digit 0-9, * or #, not {shown}", 'e.g. "2" (in quotes)'


def sound_value(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and SOUND.fullmatch(value):
        return value, "", ""
    if not isinstance(value, str):
        return None, f"must be a sound name, not {kind_of(value)}", 'e.g. "callrec/disclosure"'
    hint = "parts of 1-64 letters, digits, '-' or '_' separated by '/', no extension"
    return None, f"bad sound name {value!r}", hint


def language_value(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str) and LANGUAGE.fullmatch(value):
        return value, "", ""
    shown = repr(value) if isinstance(value, str) else kind_of(value)
    return None, f"is not a language code: {shown}", 'like "en", "de" or "pt_BR"'


def string_list(
    item: Callable[[Any], tuple[str | None, str, str]],
) -> Callable[[Any], tuple[tuple[str, ...] | None, str, str]]:
    def check(value: Any) -> tuple[tuple[str, ...] | None, str, str]:
        if not isinstance(value, list):
            return None, f"must be a list, not {kind_of(value)}", 'e.g. ["a", "b"]'
        out = []
        for i, v in enumerate(value):
            ok, message, hint = item(v)
            if ok is None:
                return None, f"item {i} {message}", hint
            out.append(ok)
        return tuple(out), "", ""

    return check


def path_text(value: Any) -> tuple[str | None, str, str]:
    """A string that can name a file: no NUL, not longer than Linux allows, a known ``~user``."""
    text, message, hint = string_value(value)
    if text is None:
        return None, message, hint
    if "\0" in text:
        return None, "contains a NUL byte, which no file name can hold", ""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) >= PATH_MAX:
        return None, f"is {len(data)} bytes long; a path has at most {PATH_MAX - 1}", ""
    longest = max(len(name) for name in data.split(b"/"))
    if longest > NAME_MAX:
        return None, f"has a name of {longest} bytes; a file name has at most {NAME_MAX}", ""
    if text.startswith("~"):
        try:
            Path(text).expanduser()
        except RuntimeError:
            user = text[1:].split("/", 1)[0]
            return None, f"~{user}: no such user", "write the full path"
    return text, "", ""


def string_or_empty(value: Any) -> tuple[str | None, str, str]:
    if isinstance(value, str):
        return value, "", ""
    return None, f"must be a string, not {kind_of(value)}", 'write it in quotes: key = "value"'


def is_host(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOST.match(host))
    return True


def host_port(text: str) -> tuple[str, int] | None:
    """``host:port`` or ``[v6]:port`` as (host, port), or None when it is neither."""
    m = _HOST_PORT.match(text)
    if m is None or int(m.group(3)) > 65535 or not is_host(m.group(1) or m.group(2)):
        return None
    return m.group(1) or m.group(2), int(m.group(3))


# --- files the config points at ------------------------------------------


def check_files(r: Reader, c: Config, sections: Collection[str]) -> None:
    """Recipient keys and spool, pseudonym key and audit log folder, prompt files.

    Only the files of the chosen ``sections`` (``recording``, ``privacy``,
    ``prompts``).
    """
    if "recording" in sections:
        for i, path in enumerate(c.recording.recipients):
            _check_recipient(r, f"recording.recipients[{i}]", path)
        _check_folder(r, "recording.spool", c.recording.spool)
        if c.recording.signing_key is not None:
            _check_signing_key(r, c.recording.signing_key)
    if "privacy" in sections:
        _check_pseudonym_key(r, c.privacy.pseudonym_key)
        _check_audit_log(r, c.privacy.audit_log)
    if "prompts" in sections:
        _check_prompts(r, c)
    if "audit" in sections and c.audit.access_log is not None:
        _check_log_file(r, "audit.access_log", c.audit.access_log)


def _check_log_file(r: Reader, key: str, path: Path) -> None:
    if path.is_dir():
        r.problem(key, f"{path} is a folder", "name a file inside it")
    else:
        _check_folder(r, key, path.parent)


def _check_audit_log(r: Reader, audit: Path) -> None:
    _check_log_file(r, "privacy.audit_log", audit)


def _check_recipient(r: Reader, key: str, path: Path) -> None:
    what = describe(path)
    if what:
        r.problem(key, f"{path} {what}", "name the .pub file written by `callrec keygen`")
        return
    if not path.is_file():
        r.problem(key, f"{path}: file does not exist", "create it with `callrec keygen`")
        return
    try:
        PublicKey.load(path)
    except KeyFileError as exc:
        r.problem(
            key,
            f"not a callrec public key: {exc.message}",
            "use the .pub file written by `callrec keygen`",
        )


def _check_signing_key(r: Reader, path: Path) -> None:
    key = "recording.signing_key"
    try:
        data = read_key_file(path, "signing key", missing="file does not exist")
        if SigningKey.is_encrypted(data):
            r.problem(
                key,
                f"{path}: protected by a passphrase, which the recorder cannot type",
                "give the recorder a key made without --passphrase-file/--ask-passphrase",
            )
            return
        SigningKey.from_bytes(data, str(path))
    except KeyFileError as exc:
        r.problem(key, f"{path}: {exc.message}", _SIGNING_HINT)
        return
    if path.stat().st_mode & 0o077:
        r.problem(
            key,
            f"{path}: readable by other users, who could sign as this recorder",
            f"chmod 600 {path}",
        )


def _check_folder(r: Reader, key: str, path: Path) -> None:
    if path.exists():
        if not path.is_dir():
            r.problem(key, f"{path} is a file, not a folder", "point it at a folder")
        elif not os.access(path, os.W_OK | os.X_OK):
            r.problem(key, f"{path}: permission denied", "make it writable for callrec")
        return
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        r.problem(key, f"{path} cannot be created: {parent} is a file, not a folder")
    elif not os.access(parent, os.W_OK | os.X_OK):
        r.problem(
            key,
            f"{path} cannot be created: {parent}: permission denied",
            f"create {path} for the callrec user",
        )


def _check_pseudonym_key(r: Reader, path: Path) -> None:
    try:
        load_pseudonym_key(path)
    except KeyFileError as exc:
        r.problem("privacy.pseudonym_key", f"{path}: {exc.message}", _PSEUDONYM_HINT)
        return
    # Whoever reads it can re-identify every pseudonymised number by brute
    # force; the AGI script's group may need it, other users never.
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:  # gone since it was read: the service will say so
        return
    if mode & 0o007:
        r.problem(
            "privacy.pseudonym_key",
            f"{path}: other users can read or write it (mode {mode:04o})",
            f"chmod 600 {path} (or 640 for the group of the callrec user)",
        )


def _check_prompts(r: Reader, c: Config) -> None:
    if not c.prompts.sounds_dir.is_dir():
        r.problem(
            "prompts.sounds_dir",
            f"{c.prompts.sounds_dir} is not a folder",
            "point it at Asterisk's sounds folder",
        )
        return
    numbers = ["", *c.prompts.numbers]
    seen: set[Path] = set()
    for number in numbers:
        for lang in c.prompts.languages:
            for kind in PROMPT_KINDS:
                ref = c.prompt_for(number, lang, kind)
                if ref.path_wav in seen:
                    continue
                seen.add(ref.path_wav)
                if not ref.path_wav.is_file():
                    key = (
                        dotted("prompts", kind)
                        if not number
                        else dotted("prompts", "numbers", number, kind)
                    )
                    r.problem(
                        key,
                        f"{ref.path_wav}: file does not exist",
                        f"install the {lang} prompt as 8 kHz 16-bit WAV",
                    )
