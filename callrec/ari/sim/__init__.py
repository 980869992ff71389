"""The built-in ARI simulator: an in-process Asterisk 22 for tests and the demo.

Only the demo and the tests import this package; production code talks to a
PBX through :mod:`callrec.ari.client`. See :mod:`callrec.ari.sim.server` for
the facade API and ``docs/DESIGN.md`` for how it stands in for a real PBX.
"""

from callrec.ari.sim.server import (
    AriSimulator,
    CallerScenario,
    DialplanStep,
    EndpointBehaviour,
    RtpFaults,
    RtpSendStats,
    SimBridge,
    SimChannel,
)

__all__ = [
    "AriSimulator",
    "CallerScenario",
    "DialplanStep",
    "EndpointBehaviour",
    "RtpFaults",
    "RtpSendStats",
    "SimBridge",
    "SimChannel",
]
