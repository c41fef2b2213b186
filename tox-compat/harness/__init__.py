"""Test harness: start real peers (steward now; placement, nova-api,
keystone, prometheus later) as subprocesses on free loopback ports.

Each `start_<peer>(workdir, ...)` writes the peer's config under `workdir`,
starts it, waits until it answers, and returns a handle whose `stop()`
(or context manager exit) ends it and keeps its log for the test report.
"""

from harness.ports import free_port
from harness.process import ManagedProcess
from harness.process import PeerStartError
from harness.steward import Steward
from harness.steward import start_steward

__all__ = [
    'ManagedProcess',
    'PeerStartError',
    'Steward',
    'free_port',
    'start_steward',
]
