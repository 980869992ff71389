"""The config: every problem reported at once as file:key with a hint."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from callrec.config import (
    PASSWORD_ENV,
    Config,
    ConfigProblems,
    Destination,
    check_config,
    load_config,
)
from callrec.config_checks import dotted
from callrec.crypto.keys import PrivateKey

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "callrec.toml"
PROMPT_NAMES = (
    "callrec/disclosure",
    "callrec/not-available",
    "callrec/recording-unavailable",
    "callrec/disclosure-sales",
)


def make_setup(root: Path) -> dict[str, Path]:
    """Real files for every path the shipped config names, under ``root``."""
    keys = root / "keys"
    keys.mkdir()
    (keys / "dpo.pub").write_text(PrivateKey.generate().public_key().to_text())
    (keys / "pseudonym.key").write_bytes(bytes(range(32)))
    (keys / "pseudonym.key").chmod(0o600)
    for lang in ("en", "de"):
        for name in PROMPT_NAMES:
            wav = root / "sounds" / lang / f"{name}.wav"
            wav.parent.mkdir(parents=True, exist_ok=True)
            wav.write_bytes(b"RIFF" + lang.encode() + name.encode())
    return {
        "/etc/callrec/dpo.pub": keys / "dpo.pub",
        "/etc/callrec/pseudonym.key": keys / "pseudonym.key",
        "/var/lib/asterisk/sounds": root / "sounds",
        "/var/spool/callrec": root / "spool",
        "/var/log/callrec/audit.jsonl": root / "log" / "audit.jsonl",
    }


def shipped_in(root: Path, **replace: str) -> Path:
    """The shipped config with its absolute paths moved under ``root``."""
    text = SHIPPED.read_text()
    for example, real in make_setup(root).items():
        text = text.replace(f'"{example}"', f'"{real}"')
    text = text.replace('password = ""', 'password = "from-file"')
    # The tests use the per-number override the reference shows as a commented example.
    text = text.replace(
        '# [prompts.numbers."100"]\n# disclosure', '[prompts.numbers."100"]\ndisclosure'
    )
    for old, new in replace.items():
        assert old in text, old
        text = text.replace(old, new)
    path = root / "callrec.toml"
    path.write_text(text)
    return path


def problems_of(path: Path) -> list[str]:
    return [str(p) for p in check_config(path, env={})]


def test_shipped_config_names_only_its_example_files() -> None:
    problems = check_config(SHIPPED, env={PASSWORD_ENV: "secret"})
    keys = {p.key for p in problems}
    assert keys <= {"recording.recipients[0]", "privacy.pseudonym_key", "prompts.sounds_dir"}
    assert all(p.file == str(SHIPPED) for p in problems)
    assert any("dpo.pub: file does not exist" in p.message for p in problems)


def test_shipped_config_with_real_files_has_no_problem(tmp_path: Path) -> None:
    path = shipped_in(tmp_path)
    assert problems_of(path) == []
    config = load_config(path, env={})
    assert config.ari.url == "http://127.0.0.1:8088"
    assert config.ari_password == "from-file"
    assert config.recording.recipients == (tmp_path / "keys" / "dpo.pub",)
    assert config.consent.grace == 2.0
    assert config.agi.host == "127.0.0.1"
    assert config.agi.port == 4573
    pub = (tmp_path / "keys" / "dpo.pub").read_text()
    assert [k.to_text() for k in config.recipient_keys()] == [pub]


def test_every_key_of_the_dataclasses_is_in_the_shipped_reference() -> None:
    text = SHIPPED.read_text()
    for key in ("url", "user", "password", "app", "spool", "recipients", "format",
                "fsync_interval", "on_failure", "media_host", "media_port", "pseudonym_key",
                "audit_log", "mode", "grace", "optout_digit", "accept_digit", "timeout",
                "on_decline", "sounds_dir", "languages", "default_language", "disclosure",
                "not_available", "recording_unavailable", "listen", "record_after_consent",
                "level"):  # fmt: skip
        assert re.search(rf"^{key} = ", text, re.M), key


def test_all_problems_are_reported_at_once_with_file_key_and_hint(tmp_path: Path) -> None:
    path = shipped_in(
        tmp_path,
        **{
            "grace = 2.0": 'grace = "two"\ngrcae = 3',
            'optout_digit = "2"': 'optout_digit = "22"',
            'format = "ulaw"': 'format = "mp3"',
        },
    )
    problems = problems_of(path)
    assert f"{path}:consent.grace: must be a number, not a string (hint: e.g. 2.0)" in problems
    assert f"{path}:consent.grcae: unknown key (hint: did you mean grace?)" in problems
    assert any(
        p.startswith(f"{path}:consent.optout_digit: must be one DTMF digit") for p in problems
    )
    assert any(
        p.startswith(f"{path}:recording.format: must be one of ulaw, alaw, slin16")
        for p in problems
    )
    with pytest.raises(ConfigProblems) as err:
        load_config(path, env={})
    assert [str(p) for p in err.value.problems] == problems
    assert len(problems) == 4


def test_unknown_section_and_bad_destination_are_named_by_dotted_key(tmp_path: Path) -> None:
    path = shipped_in(
        tmp_path,
        **{
            '"100" = { endpoint = "PJSIP/agent", timeout = 30 }':
                '"100" = { endpoint = "agent with spaces", timeout = -1, ring = 3 }',
            "[logging]": "[loging]\nlevel = 1\n[logging]",
        },
    )  # fmt: skip
    problems = problems_of(path)
    assert f"{path}:loging: unknown key (hint: did you mean logging?)" in problems
    assert any(
        p.startswith(f'{path}:destinations."100".endpoint: is not a dial string') for p in problems
    )
    assert f'{path}:destinations."100".timeout: must be > 0, not -1' in problems
    assert any(p.startswith(f'{path}:destinations."100".ring: unknown key') for p in problems)


def test_missing_recipient_file_and_short_pseudonym_key(tmp_path: Path) -> None:
    path = shipped_in(tmp_path)
    (tmp_path / "keys" / "dpo.pub").unlink()
    (tmp_path / "keys" / "pseudonym.key").write_bytes(b"short")
    problems = problems_of(path)
    assert problems == [
        f"{path}:recording.recipients[0]: {tmp_path}/keys/dpo.pub: file does not exist "
        "(hint: create it with `callrec keygen`)",
        f"{path}:privacy.pseudonym_key: {tmp_path}/keys/pseudonym.key: pseudonym key must be "
        "32 bytes or 64 hex digits, found 5 bytes "
        "(hint: create one with: head -c32 /dev/urandom > FILE && chmod 600 FILE)",
    ]


def test_a_recipient_file_that_is_not_a_public_key(tmp_path: Path) -> None:
    path = shipped_in(tmp_path)
    (tmp_path / "keys" / "dpo.pub").write_text("ssh-ed25519 AAAA me@host\n")
    [problem] = check_config(path, env={})
    assert problem.key == "recording.recipients[0]"
    assert problem.message.startswith("not a callrec public key")


def test_same_digit_for_opt_out_and_accept(tmp_path: Path) -> None:
    path = shipped_in(tmp_path, **{'accept_digit = "1"': 'accept_digit = "2"'})
    assert problems_of(path) == [
        f"{path}:consent.accept_digit: opt-out and accept digit are both '2' "
        "(hint: choose two different digits)"
    ]


def test_spool_where_a_file_is(tmp_path: Path) -> None:
    path = shipped_in(tmp_path)
    (tmp_path / "spool").write_text("not a folder")
    assert problems_of(path) == [
        f"{path}:recording.spool: {tmp_path}/spool is a file, not a folder "
        "(hint: point it at a folder)"
    ]


def test_environment_password_wins_and_never_shows_in_repr(tmp_path: Path) -> None:
    path = shipped_in(tmp_path)
    config = load_config(path, env={PASSWORD_ENV: "env-secret"})
    assert config.ari_password == "env-secret"
    assert config.ari.password_from_env
    assert "env-secret" not in repr(config)
    assert "from-file" not in repr(config)


def test_no_password_anywhere(tmp_path: Path) -> None:
    path = shipped_in(tmp_path, **{'password = "from-file"': 'password = ""'})
    assert problems_of(path) == [
        f"{path}:ari.password: no ARI password "
        f"(hint: set ari.password or the environment variable {PASSWORD_ENV})"
    ]
    assert load_config(path, env={PASSWORD_ENV: "x"}).ari_password == "x"


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    make_setup(tmp_path)
    path = tmp_path / "callrec.toml"
    path.write_text(
        '[ari]\npassword = "p"\n'
        '[recording]\nspool = "spool"\nrecipients = ["keys/dpo.pub"]\n'
        '[privacy]\npseudonym_key = "keys/pseudonym.key"\naudit_log = "log/audit.jsonl"\n'
        '[prompts]\nsounds_dir = "sounds"\nlanguages = ["en"]\n'
    )
    config = load_config(path, env={})
    assert config.recording.spool == tmp_path / "spool"
    assert config.privacy.audit_log == tmp_path / "log" / "audit.jsonl"
    assert config.prompts.default_language == "en"
    assert config.destination_for("100") is None


def test_url_must_be_http_and_without_ari(tmp_path: Path) -> None:
    path = shipped_in(tmp_path, **{'url = "http://127.0.0.1:8088"': 'url = "ws://pbx/ari"'})
    [problem] = check_config(path, env={})
    assert problem.key == "ari.url"
    second = tmp_path / "second"
    second.mkdir()
    path = shipped_in(second, **{'url = "http://127.0.0.1:8088"': 'url = "http://pbx:8088/ari/"'})
    assert problems_of(path) == [
        f"{path}:ari.url: must not end with /ari (hint: callrec adds /ari itself)"
    ]


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "callrec.toml"
    path.write_text("[ari]\nurl = \n")
    [problem] = check_config(path, env={})
    assert problem.key == "line 2"
    assert problem.message.startswith("not valid TOML")


def test_missing_file(tmp_path: Path) -> None:
    [problem] = check_config(tmp_path / "nope.toml", env={})
    assert str(problem).endswith(
        "(file): file does not exist (hint: write one: callrec config template > FILE)"
    )


def test_prompts_per_number_and_language_with_fallback(tmp_path: Path) -> None:
    config = load_config(shipped_in(tmp_path), env={})
    sounds = tmp_path / "sounds"
    ref = config.prompt_for("100", "de", "disclosure")
    assert (ref.name, ref.language, ref.path_wav) == (
        "callrec/disclosure-sales", "de", sounds / "de" / "callrec" / "disclosure-sales.wav"
    )  # fmt: skip
    assert ref.media == "sound:callrec/disclosure-sales"
    # Number 100 overrides only the disclosure; the other prompts are the defaults.
    assert config.prompt_for("100", "de", "not_available").name == "callrec/not-available"
    # A language nobody configured (even a hostile one) falls back to the default.
    hostile = config.prompt_for("555", "../../etc", "disclosure")
    assert hostile.path_wav == sounds / "en" / "callrec" / "disclosure.wav"


def test_missing_prompt_audio_is_named(tmp_path: Path) -> None:
    path = shipped_in(tmp_path)
    (tmp_path / "sounds" / "de" / "callrec" / "disclosure-sales.wav").unlink()
    [problem] = check_config(path, env={})
    assert problem.key == 'prompts.numbers."100".disclosure'
    assert "de/callrec/disclosure-sales.wav: file does not exist" in problem.message


def test_destinations(tmp_path: Path) -> None:
    config = load_config(
        shipped_in(tmp_path, **{'"100" = { endpoint = "PJSIP/agent", timeout = 30 }':
                                '"100" = { endpoint = "Local/100@internal", timeout = 12.5 }'}),
        env={},
    )  # fmt: skip
    assert config.destination_for("100") == Destination("Local/100@internal", 12.5)
    assert config.destination_for("999") == Destination("PJSIP/agent", 30.0)


def test_dotted_keys_quote_what_toml_would() -> None:
    assert dotted("destinations", "100", "endpoint") == 'destinations."100".endpoint'
    assert dotted("consent", "grace") == "consent.grace"
    assert dotted("a", 'x"y') == 'a."x\\"y"'


def test_defaults_build_without_a_file() -> None:
    config = Config()
    assert config.consent.optout_digit == "2"
    assert config.recording.on_failure == "best-effort"


def test_shipped_asterisk_snippets_match_the_reference_config() -> None:
    folder = SHIPPED.parent
    toml = tomllib.loads(SHIPPED.read_text())
    listen, app = toml["agi"]["listen"], toml["ari"]["app"]
    port = urlsplit(toml["ari"]["url"]).port
    extensions = (folder / "extensions.conf").read_text()
    freepbx = (folder / "freepbx-custom.conf").read_text()
    for dialplan in (extensions, freepbx):
        assert f"AGI(agi://{listen}/consent," in dialplan
        assert f"AGI(agi://{listen}/record)" in dialplan
    assert f"Stasis({app},${{EXTEN}})" in extensions
    assert f"\n[{toml['ari']['user']}]\ntype = user" in (folder / "ari.conf").read_text()
    http = (folder / "http.conf").read_text()
    assert "bindaddr = 127.0.0.1" in http
    assert f"bindport = {port}" in http
    unit = (folder / "callrec.service").read_text()
    assert "ExecStart=/opt/callrec/bin/callrec serve --config /etc/callrec/callrec.toml" in unit
    spool, audit = toml["recording"]["spool"], Path(toml["privacy"]["audit_log"]).parent
    catalog = Path(toml["catalog"]["url"].removeprefix("sqlite://")).parent
    assert f"ReadWritePaths={spool} {audit} {catalog}\n" in unit
    for option in ("NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes"):
        assert option in unit


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://callrec:TopSecret@pbx:8088", "must not contain a user or password"),
        ("htp://callrec:TopSecret@pbx:8088", "must not contain a user or password"),
        ("http://u:TopSecret@[::1", "must be an http:// or https:// URL"),
        ("http://[::1", "must be an http:// or https:// URL"),
    ],
)
def test_ari_url_problems_never_echo_credentials(tmp_path: Path, url: str, message: str) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f'[ari]\nurl = "{url}"\npassword = "x"\n')
    problems = [p for p in check_config(path, env={}) if p.key == "ari.url"]
    assert len(problems) == 1
    assert message in str(problems[0])
    assert "TopSecret" not in str(problems[0])


def test_non_utf8_and_infinite_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_bytes(b'[ari]\npassword = "caf\xe9"\n')
    (problem,) = check_config(path, env={})
    assert "not UTF-8 text" in str(problem)
    path.write_text('[ari]\npassword = "x"\n[consent]\ngrace = inf\n')
    problems = {p.key: str(p) for p in check_config(path, env={})}
    assert "must be a finite number" in problems["consent.grace"]


def test_chosen_sections_only_are_read_and_checked(tmp_path: Path) -> None:
    path = shipped_in(
        tmp_path,
        **{'password = "from-file"': 'password = ""', 'level = "INFO"': 'level = "LOUD"'},
    )
    path.write_text(path.read_text() + '\n[recordng]\nspool = "x"\n')
    with pytest.raises(ConfigProblems):
        load_config(path, env={})
    prompts = load_config(path, env={}, sections=("prompts",)).prompts
    assert prompts.languages == ("en", "de")
    # The AGI script's need_ari=False is every section but ari: no password needed,
    # while a bad value elsewhere and a misspelt table are still reported.
    with pytest.raises(ConfigProblems) as err:
        load_config(path, env={}, need_ari=False)
    assert sorted(p.key for p in err.value.problems) == ["logging.level", "recordng"]


def test_prompts_alone_still_check_their_values(tmp_path: Path) -> None:
    path = shipped_in(tmp_path, **{'default_language = "en"': 'default_language = "fr"'})
    with pytest.raises(ConfigProblems) as err:
        load_config(path, env={}, sections=("prompts",), check_files=False)
    assert [p.key for p in err.value.problems] == ["prompts.default_language"]
