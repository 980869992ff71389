"""``[recording] channels`` and its per-number overrides: what the shipped file
says, what a call to each number gets, and each mistake named as file:key."""

from __future__ import annotations

from pathlib import Path

from callrec.config import load_config
from tests.callrec.test_config import problems_of, shipped_in

PER_NUMBER = '# [recording.numbers."100"]\n# channels = "stereo"'


def test_the_shipped_file_records_mixed_and_shows_a_stereo_number(tmp_path: Path) -> None:
    recording = load_config(shipped_in(tmp_path), env={}).recording
    assert recording.channels == "mixed"
    assert recording.channel_numbers == {}
    assert recording.channels_for("100") == "mixed"


def test_stereo_for_one_number_or_for_all(tmp_path: Path) -> None:
    (tmp_path / "all").mkdir()
    example = '[recording.numbers."100"]\nchannels = "stereo"'
    recording = load_config(shipped_in(tmp_path, **{PER_NUMBER: example}), env={}).recording
    assert recording.channels_for("100") == "stereo"
    assert recording.channels_for("200") == "mixed"

    everything = shipped_in(
        tmp_path / "all",
        **{
            'channels = "mixed"': 'channels = "stereo"',
            PER_NUMBER: '[recording.numbers."+49 30 1234"]\nchannels = "mixed"',
        },
    )
    recording = load_config(everything, env={}).recording
    assert recording.channels_for("200") == "stereo"
    assert recording.channels_for("+49 30 1234") == "mixed"


def test_every_mistake_is_named_with_a_hint(tmp_path: Path) -> None:
    path = shipped_in(
        tmp_path,
        **{
            'channels = "mixed"': 'channels = "both"',
            PER_NUMBER: '[recording.numbers."100"]\nchannels = 2\nchanels = "stereo"\n'
            '[recording.numbers."200"]\nformat = "alaw"\n'
            '[recording.numbers]\n"300" = "stereo"',
        },
    )
    assert problems_of(path) == [
        f"{path}:recording.channels: must be one of mixed, stereo, not 'both'",
        f'{path}:recording.numbers."100".chanels: unknown key (hint: did you mean channels?)',
        f'{path}:recording.numbers."100".channels: must be one of mixed, stereo, not an integer',
        f'{path}:recording.numbers."200": must be a table with channels, not a table '
        'without channels (hint: { channels = "stereo" })',
        f'{path}:recording.numbers."300": must be a table with channels, not a string '
        '(hint: { channels = "stereo" })',
    ]
