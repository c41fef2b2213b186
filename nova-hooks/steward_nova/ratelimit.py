"""At most one warning per interval per kind of failure, never one per host.

When steward is down every scheduling request fails the same way; the
operator needs to hear it once a minute, with a count, not once per host.
"""

import threading
import time


class RateLimitedWarner:
    def __init__(self, logger, interval_fn, clock=time.monotonic):
        self._log = logger
        self._interval_fn = interval_fn
        self._clock = clock
        self._lock = threading.Lock()
        # kind -> (time of the last warning, repeats suppressed since)
        self._state = {}

    def warn(self, kind, msg, args):
        """Log `msg % args` unless `kind` was warned within the interval.

        Returns True when the warning was emitted.
        """
        now = self._clock()
        with self._lock:
            last, suppressed = self._state.get(kind, (None, 0))
            if last is not None and now - last < self._interval_fn():
                self._state[kind] = (last, suppressed + 1)
                return False
            self._state[kind] = (now, 0)
        if suppressed:
            msg += (' (%(suppressed)d more failure(s) of this kind since '
                    'the last warning were not logged)')
            args = dict(args, suppressed=suppressed)
        self._log.warning(msg, args)
        return True

    def reset(self):
        with self._lock:
            self._state.clear()
