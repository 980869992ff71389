"""The [recording] pause keys and [control]: what the shipped file says, and each
mistake named as file:key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from callrec.config import Config, load_config
from callrec.config_model import ControlConfig, PauseConfig
from callrec.config_pause import agent_media, tone_seconds
from callrec.config_reload import plan_reload
from tests.callrec.test_config import problems_of, shipped_in


def test_the_shipped_values_are_the_defaults(tmp_path: Path) -> None:
    config = load_config(shipped_in(tmp_path), env={})
    assert config.recording.pause == PauseConfig()
    assert config.recording.pause.pause_code == "*1"
    assert config.recording.pause.resume_code == "*2"
    assert config.recording.pause.auto_resume == 0.0
    assert config.control == ControlConfig()
    assert config.control.socket == Path("/run/callrec/control.sock")


def test_codes_off_a_relative_socket_and_a_sound(tmp_path: Path) -> None:
    path = shipped_in(
        tmp_path,
        **{
            'pause_code = "*1"': 'pause_code = "#9A"',
            'resume_code = "*2"': 'resume_code = ""',
            "auto_resume = 0": "auto_resume = 90",
            'pause_tone = "tone:!660/150,!0/60,!440/200"': 'pause_tone = "callrec/paused"',
            'resume_tone = "tone:!440/150,!0/60,!660/200"': 'resume_tone = ""',
            'socket = "/run/callrec/control.sock"': 'socket = "run/control.sock"',
        },
    )
    config = load_config(path, env={})
    assert config.recording.pause == PauseConfig("#9A", "", 90.0, "callrec/paused", "")
    assert config.control.socket == tmp_path / "run" / "control.sock"


def test_no_control_socket(tmp_path: Path) -> None:
    path = shipped_in(tmp_path, **{'socket = "/run/callrec/control.sock"': 'socket = ""'})
    assert load_config(path, env={}).control.socket is None


def test_every_mistake_is_named_with_a_hint(tmp_path: Path) -> None:
    long_socket = "/run/" + "s" * 120
    path = shipped_in(
        tmp_path,
        **{
            'pause_code = "*1"': 'pause_code = "*1*1*1*1*"',
            'resume_code = "*2"': "resume_code = 2",
            "auto_resume = 0": "auto_resume = -1",
            'pause_tone = "tone:!660/150,!0/60,!440/200"': 'pause_tone = "tone:loud!"',
            'socket = "/run/callrec/control.sock"': f'socket = "{long_socket}"\nport = 1',
        },
    )
    problems = problems_of(path)
    assert problems == [
        f"{path}:recording.pause_code: must be 1 to 8 of the digits 0-9 * # A-D, or empty, "
        'not \'*1*1*1*1*\' (hint: e.g. "*1"; "" turns the code off)',
        f"{path}:recording.resume_code: must be 1 to 8 of the digits 0-9 * # A-D, or empty, "
        'not an integer (hint: e.g. "*1"; "" turns the code off)',
        f"{path}:recording.auto_resume: must be seconds from 0 to 86400, not -1 "
        "(hint: 0 never resumes by itself)",
        f"{path}:recording.pause_tone: is not a tone, sound or prompt name: 'tone:loud!' "
        '(hint: e.g. "tone:!660/150,!0/60,!440/200", "sound:beep", a prompt name, '
        'or "" for none)',
        f"{path}:control.port: unknown key (hint: known keys: socket)",
        f"{path}:control.socket: is {len(long_socket)} bytes long; a Unix socket path has "
        "at most 107 (hint: e.g. /run/callrec/control.sock)",
    ]


@pytest.mark.parametrize(
    ("value", "media", "seconds"),
    [
        ("tone:!660/150,!0/60,!440/200", "tone:!660/150,!0/60,!440/200", 0.41),
        ("tone:ring", "tone:ring", 1.0),  # an indication: stopped after a second
        ("sound:beep", "sound:beep", None),  # a sound ends by itself
        ("callrec/paused", "sound:callrec/paused", None),
        ("tone:1400/500;tonezone=fr", "", None),
        ("../etc/passwd", "", None),
    ],
)
def test_what_the_agent_hears(value: str, media: str, seconds: float | None) -> None:
    assert agent_media(value) == media
    assert tone_seconds(media) == (pytest.approx(seconds) if seconds is not None else None)


def test_a_reload_applies_the_codes_to_the_next_calls_and_keeps_the_socket() -> None:
    running = Config(path=Path("/etc/callrec/callrec.toml"))
    loaded = replace(
        running,
        recording=replace(running.recording, pause=PauseConfig(pause_code="#7", auto_resume=60)),
        control=ControlConfig(socket=Path("/run/other.sock")),
    )
    plan = plan_reload(running, loaded)
    assert plan.needs_restart == ("control.socket",)
    assert plan.changed == ("recording",)
    assert plan.config.recording.pause.pause_code == "#7"
    assert plan.config.control == ControlConfig()
