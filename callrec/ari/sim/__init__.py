"""The built-in ARI simulator: an in-process Asterisk 22 for tests and the demo.

Only the demo and the tests import this package; production code talks to a
PBX through :mod:`callrec.ari.client`. See :mod:`callrec.ari.sim.server` for
the facade API and ``docs/DESIGN.md`` for how it stands in for a real PBX.
The facade's ``__all__`` names the API, and this package exports just that.
"""

from callrec.ari.sim.server import *  # noqa: F403 (the names of server.__all__)
from callrec.ari.sim.server import __all__ as __all__
