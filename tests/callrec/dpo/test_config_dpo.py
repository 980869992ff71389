"""[retention] and [audit]: read, defaulted, and every mistake named as file:key."""

from __future__ import annotations

from pathlib import Path

from callrec.config import check_config, load_config

BASE = '[privacy]\naudit_log = "log/audit.jsonl"\n'


def _load(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "callrec.toml"
    path.write_text(BASE + text)
    return path


def _problems(path: Path) -> list[str]:
    return [f"{p.key}: {p.message}" for p in check_config(path, env={})]


def test_retention_rules_name_their_key_and_the_access_log_sits_beside_the_audit_log(
    tmp_path: Path,
) -> None:
    path = _load(tmp_path, '[retention]\ndays = 60\n[retention.numbers."100"]\ndays = 400\n')
    config = load_config(path, sections=("privacy", "audit", "retention"), check_files=False)
    assert str(config.retention.rule_for("100")) == 'retention.numbers."100".days = 400'
    assert str(config.retention.rule_for("200")) == "retention.days = 60"
    assert config.access_log == tmp_path / "log" / "access.jsonl"

    sections = ("privacy", "audit", "retention")
    default = load_config(_load(tmp_path, ""), sections=sections, check_files=False)
    assert default.retention.rule_for("100").days == 90
    elsewhere = _load(tmp_path, '[audit]\naccess_log = "dpo/access.jsonl"\n')
    moved = load_config(elsewhere, sections=sections, check_files=False)
    assert moved.access_log == tmp_path / "dpo" / "access.jsonl"


def test_every_retention_and_access_log_mistake_is_named(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    path = _load(
        tmp_path,
        '[audit]\naccess_log = "taken"\nrotate = true\n'
        "[retention]\ndays = 0\nkeep = 1\n"
        '[retention.numbers."100"]\ndays = 1.5\n'
        '[retention.numbers."200"]\nweeks = 2\n'
        '[retention.numbers."300"]\n',
    )
    problems = _problems(path)
    expected = [
        f"audit.access_log: {tmp_path / 'taken'} is a folder",
        "audit.rotate: unknown key",
        "retention.days: must be at least 1 day, not 0",
        "retention.keep: unknown key",
        'retention.numbers."100".days: must be a whole number of days, not a number',
        'retention.numbers."200": must be a table with days',
        'retention.numbers."300": must be a table with days',
    ]
    for line in expected:
        assert line in problems, (line, problems)
