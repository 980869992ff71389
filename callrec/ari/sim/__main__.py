"""``python -m callrec.ari.sim --port 8088``: the simulator on its own, for manual testing."""

import sys

from callrec.ari.sim.server import main

sys.exit(main())
