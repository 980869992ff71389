"""Regenerate the default callrec prompts in this folder with espeak-ng.

Run from the repository root: ``.venv/bin/python sounds/generate.py``
(needs ``apt-get install espeak-ng``). Each text is spoken by espeak-ng into a
temporary 22.05 kHz WAV, which goes through the same conversion as
``callrec prompts add NAME --lang LANG FILE --sounds-dir sounds`` (default
-20 LUFS target). The table printed at the end is the one in README.md.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from callrec.prompts.convert import Target, convert_file
from callrec.prompts.store import install

HERE = Path(__file__).resolve().parent
SPEED_WPM = "175"
PITCH = "50"
VOICES = {"en": "en", "de": "de"}

TEXTS: dict[str, dict[str, str]] = {
    "disclosure": {
        "en": "This call is recorded to document our conversation and for quality assurance. "
        "Our privacy notice is on our website, under Privacy. "
        "To refuse, hang up now, or press 2 to be connected without recording.",
        "de": "Dieses Gespräch wird zur Dokumentation und Qualitätssicherung aufgezeichnet. "
        "Die Datenschutzhinweise finden Sie auf unserer Webseite unter Datenschutz. "
        "Wenn Sie das nicht möchten, legen Sie jetzt auf, "
        "oder drücken Sie die 2 für eine Verbindung ohne Aufzeichnung.",
    },
    "recording-unavailable": {
        "en": "We are sorry, recording is not possible right now. Please call again later.",
        "de": "Leider ist eine Aufzeichnung zurzeit nicht möglich. "
        "Bitte rufen Sie später noch einmal an.",
    },
    "not-available": {
        "en": "The person you called is not available. Please try again later.",
        "de": "Der gewünschte Gesprächspartner ist zurzeit nicht erreichbar. "
        "Bitte versuchen Sie es später noch einmal.",
    },
}


def espeak_command(lang: str, text: str, out: Path) -> list[str]:
    """The exact espeak-ng command line README.md documents."""
    return ["espeak-ng", "-v", VOICES[lang], "-s", SPEED_WPM, "-p", PITCH, "-w", str(out), text]


def main() -> int:
    version = subprocess.run(
        ["espeak-ng", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    print(f"# {version}")
    print("| lang | sound | seconds | sha256 of the .wav |")
    print("|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, texts in TEXTS.items():
            for lang, text in texts.items():
                spoken = Path(tmp) / f"{lang}-{name}.wav"
                subprocess.run(espeak_command(lang, text, spoken), check=True)
                audio = convert_file(spoken, Target())
                done = install(audio, HERE, lang, name)
                print(f"| {lang} | {done.sound} | {audio.seconds:.2f} | `{done.sha256}` |")
                for warning in audio.warnings:
                    print(f"warning: {lang} {name}: {warning}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
