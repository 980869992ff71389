"""callrec: GDPR-grade call recording for Asterisk.

The shared core. It imports neither front end (``ari_app``, ``agi``); only
``callrec.cli``, the composition root, may (lazily).
"""

__version__ = "0.1.0"
