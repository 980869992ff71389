"""``callrec prompts add | list | check`` as an admin runs them."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from callrec.cli import main
from callrec.config import PromptNames
from callrec.prompts.check import read_prompts_config, references

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "sounds"
DEFAULT_SOUNDS = ("callrec/disclosure", "callrec/not-available", "callrec/recording-unavailable")


def source(tmp_path: Path, seconds: float = 2.0, rate: int = 44100) -> Path:
    rng = np.random.default_rng(7)
    t = np.arange(int(seconds * rate)) / rate
    mono = 0.2 * rng.standard_normal(len(t)) * np.clip(np.sin(2 * np.pi * 3 * t), 0, None)
    path = tmp_path / "welcome.flac"
    sf.write(str(path), np.stack([mono, 0.8 * mono], axis=1), rate)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def printed_hash(out: str) -> str:
    found = re.search(r"^sha256: ([0-9a-f]{64})$", out, re.MULTILINE)
    assert found, out
    return found.group(1)


def write_config(tmp_path: Path, sounds: Path, languages: str, extra: str = "") -> Path:
    path = tmp_path / "callrec.toml"
    path.write_text(
        f'[ari]\npassword = "x"\n\n[prompts]\nsounds_dir = "{sounds}"\n'
        f"languages = {languages}\n{extra}"
    )
    return path


def test_add_prints_the_uri_and_the_hash_of_the_installed_wav(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sounds = tmp_path / "sounds"
    args = ("prompts", "add", "welcome", "--lang", "de", str(source(tmp_path)))
    code, out, err = run(capsys, *args, "--sounds-dir", str(sounds))
    assert (code, err) == (0, "")
    assert "play with: sound:callrec/welcome\n" in out
    wav = sounds / "de" / "callrec" / "welcome.wav"
    assert printed_hash(out) == hashlib.sha256(wav.read_bytes()).hexdigest()
    first = printed_hash(out)
    _, again, _ = run(capsys, *args, "--sounds-dir", str(sounds))
    assert printed_hash(again) == first


def test_add_takes_the_sounds_dir_from_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, Path("snd"), '["en"]')
    code, _, err = run(
        capsys, "prompts", "add", "hi", "--lang", "de", str(source(tmp_path)),
        "--config", str(config),
    )  # fmt: skip
    assert code == 0
    assert "de is not in prompts.languages" in err
    assert (tmp_path / "snd" / "de" / "callrec" / "hi.sln16").is_file()


def test_add_reports_limiting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        capsys, "prompts", "add", "loud", "--lang", "en", str(source(tmp_path)),
        "--rms-dbfs", "-3", "--sounds-dir", str(tmp_path / "s"),
    )  # fmt: skip
    assert code == 0
    assert err.startswith("warning: peak would reach +")
    assert "a limiter held it at -1.0 dBFS" in err


@pytest.mark.parametrize("name", ["../evil", "a/b", "x.wav"])
def test_add_refuses_an_unsafe_name_as_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["prompts", "add", name, "--lang", "en", str(source(tmp_path))])
    assert exit_.value.code == 2
    assert f"bad prompt name {name!r}" in capsys.readouterr().err
    assert not (tmp_path / "evil").exists()


def test_add_says_why_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = tmp_path / "readme.ogg"
    text.write_text("not audio at all, just words\n" * 10)
    code, out, err = run(
        capsys, "prompts", "add", "x", "--lang", "en", str(text), "--sounds-dir", str(tmp_path)
    )
    assert (code, out) == (1, "")
    assert err.startswith(f"callrec prompts: {text}: unreadable: not a readable audio file")
    assert not (tmp_path / "en").exists()


def test_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sounds = tmp_path / "sounds"
    src = str(source(tmp_path))
    _, added, _ = run(
        capsys, "prompts", "add", "a", "--lang", "en", src, "--sounds-dir", str(sounds)
    )
    run(capsys, "prompts", "add", "b", "--lang", "en", src, "--sounds-dir", str(sounds))
    (sounds / "en" / "callrec" / "b.ulaw").unlink()
    code, out, _ = run(capsys, "prompts", "list", "--sounds-dir", str(sounds))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "en:"
    assert re.fullmatch(
        rf"  callrec/a +\d\.\d\d s  wav,sln16,ulaw,alaw +{printed_hash(added)}", lines[1]
    )
    assert re.fullmatch(r"  callrec/b +\d\.\d\d s  wav,sln16,alaw +[0-9a-f]{64} \(incomplete\)",
                        lines[2])  # fmt: skip


def test_list_of_the_shipped_prompts(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "prompts", "list", "--sounds-dir", str(SHIPPED))
    assert code == 0
    for lang in ("de", "en"):
        block = out.split(f"{lang}:\n", 1)[1]
        for sound in DEFAULT_SOUNDS:
            assert re.search(rf"^  {sound} .* wav,sln16,ulaw,alaw +[0-9a-f]{{64}}$", block, re.M)


def test_shipped_prompts_are_telephone_ready() -> None:
    for lang in ("de", "en"):
        for sound in DEFAULT_SOUNDS:
            wav = SHIPPED / lang / f"{sound}.wav"
            info = sf.info(str(wav))
            assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
            assert (SHIPPED / lang / f"{sound}.sln16").stat().st_size == info.frames * 4
            assert (SHIPPED / lang / f"{sound}.ulaw").stat().st_size == info.frames
            assert (SHIPPED / lang / f"{sound}.alaw").stat().st_size == info.frames
        disclosure = sf.info(str(SHIPPED / lang / "callrec/disclosure.wav")).duration
        assert 10 <= disclosure <= 15


def test_check_passes_for_the_shipped_prompts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, SHIPPED, '["en", "de"]')
    code, out, _ = run(capsys, "prompts", "check", "--config", str(config))
    assert code == 0
    assert out.startswith("ok: every prompt the config uses exists in en, de")


def test_check_lists_what_is_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sounds = tmp_path / "sounds"
    shutil.copytree(SHIPPED / "en", sounds / "en")
    (sounds / "en" / "callrec" / "not-available.alaw").unlink()
    extra = '\n[prompts.numbers."100"]\ndisclosure = "callrec/disclosure-sales"\n'
    config = write_config(tmp_path, sounds, '["en", "fr"]', extra)
    code, out, err = run(capsys, "prompts", "check", "--config", str(config))
    assert code == 1
    lines = out.splitlines()
    assert "missing: en/callrec/not-available .alaw (used by prompts.not_available)" in lines
    assert (
        "missing: en/callrec/disclosure-sales .wav, .sln16, .ulaw, .alaw "
        '(used by prompts.numbers."100".disclosure)'
    ) in lines
    assert sum(line.startswith("missing: fr/") for line in lines) == 4
    assert err == f"6 prompt(s) incomplete under {sounds}\n"


def test_check_reports_a_bad_sound_name_in_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, SHIPPED, '["en"]', 'disclosure = "../../etc/passwd"\n')
    code, _, err = run(capsys, "prompts", "check", "--config", str(config))
    assert code == 1
    assert f"{config}:prompts.disclosure: bad sound name '../../etc/passwd'" in err


def test_the_reference_config_is_read_as_load_config_reads_it() -> None:
    prompts = read_prompts_config(ROOT / "config" / "callrec.toml")
    assert prompts.sounds_dir == Path("/var/lib/asterisk/sounds")
    assert prompts.languages == ("en", "de")
    assert prompts.names == PromptNames()
    # Its per-number override is a commented example: the defaults need only the shipped prompts.
    assert prompts.numbers == {}
    assert set(references(prompts)) == set(DEFAULT_SOUNDS)
