"""Announcement prompts: convert, install, list and check them.

Layout (Asterisk's sounds tree): ``<sounds_dir>/<lang>/callrec/<NAME>.<ext>``
for ``ext`` in ``wav`` (8 kHz 16-bit mono WAV), ``sln16`` (16 kHz signed
16-bit little-endian raw), ``ulaw`` and ``alaw`` (8 kHz raw G.711). Asterisk
plays ``sound:callrec/<NAME>`` and picks the format matching the channel.

The prompt hash: the SHA-256 of the bytes of the canonical 8 kHz WAV file,
``<sounds_dir>/<lang>/callrec/<NAME>.wav``, exactly what the consent evidence
(``callrec.evidence.prompt_sha256``) records for the prompt a caller heard.
The WAV is written deterministically (soundfile PCM_16: a plain 44-byte RIFF
header, no timestamps or tool names; samples rounded without dither), so the
same source and settings always give the same hash.

The package imports nothing itself: the config and the evidence need only
:mod:`callrec.prompts.names` (names, patterns, :class:`PromptRef`), never
the converter's numeric libraries nor :mod:`callrec.prompts.check`, which
reads the config. Import the submodule you need:

- :mod:`callrec.prompts.names`: sound names, languages, file paths, PromptRef
- :mod:`callrec.prompts.convert`: any audio file to a loudness-normalised prompt
- :mod:`callrec.prompts.store`: install and list prompts in a sounds tree
- :mod:`callrec.prompts.check`: which prompts the config names are missing
"""
