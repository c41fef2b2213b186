"""Waiting for what a real service does in its own time."""

import time


def wait_for(what, probe, timeout=30.0, every=0.25):
    """Poll probe() until it returns something true and return that; fail
    naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(every)
    raise AssertionError('waited %.0fs for %s; last seen: %r' % (
        timeout, what, last))
