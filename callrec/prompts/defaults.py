"""The converter's defaults that ``callrec prompts add --help`` names.

Apart from :mod:`callrec.prompts.convert` so that the help (and every other
``callrec`` command) can show them without importing numpy, soxr or
pyloudnorm, which take seconds to load.
"""

from __future__ import annotations

# -20 LUFS: speech prompts sit a little above broadcast level (-23) because
# phones have no volume headroom to spare. The shipped espeak prompts at
# -20 LUFS peak near -1 dBFS: the limiter touches a few peaks at most.
DEFAULT_TARGET_LUFS = -20.0
DEFAULT_MAX_SECONDS = 60.0
TRIM_THRESHOLD_DB = -40.0
CEILING_DBFS = -1.0
