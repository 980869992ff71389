"""Sealed-recording cryptography: keys, the container format, the Tink segment layer."""

from callrec.crypto.envelope import open_sealed, seal_for
from callrec.crypto.keys import PrivateKey, PublicKey

__all__ = ["PrivateKey", "PublicKey", "open_sealed", "seal_for"]
