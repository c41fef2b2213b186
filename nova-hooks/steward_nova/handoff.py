"""The filter's weights, handed to the weigher of the same request.

With ``POST /v1/filter?weigh=true`` (docs/callout.md) steward answers the
filter and the weights of the allowed hosts in one round trip. Nova runs
StewardFilter and then StewardWeigher for one scheduling request in one
thread, with the same RequestSpec object; other requests may run at the
same time in other threads or greenthreads. So an entry here is:

- keyed by the RequestSpec's id() AND its instance uuid (a multi-create
  reuses one RequestSpec and changes instance_uuid for each instance);
- tied to that very RequestSpec by a weak reference, so a recycled id()
  can never match a later request;
- taken (removed) by the weigher, dropped by the next filter call of the
  same key before it asks steward (a failed call leaves nothing behind),
  and forgotten after TTL seconds or when more than MAX_ENTRIES wait.

A miss is never wrong, only slower: the weigher then calls /v1/weigh.
"""

import threading
import time
import weakref

# Between a request's filter and its weigher Nova runs the rest of its
# filters and weighers: milliseconds, a second for thousands of hosts.
TTL = 10.0
# Requests between filter and weigher at once in one scheduler process.
# An entry is left behind only when the weigher does not run (one host
# left, or none).
MAX_ENTRIES = 64

_lock = threading.Lock()
# key -> (deadline, weak reference to the RequestSpec or None, passed
#         HostStates, their (host, nodename) pairs, their weights)
_entries = {}
# Set when a StewardWeigher is loaded: only then does the filter ask for
# weights (steward skips weighing otherwise).
_wanted = False


def want():
    """Called by StewardWeigher.__init__: weights will be used."""
    global _wanted
    _wanted = True


def wanted():
    return _wanted


def _key(spec_obj):
    try:
        return (id(spec_obj), str(spec_obj.instance_uuid))
    except Exception:
        return None


def _ref(spec_obj):
    try:
        return weakref.ref(spec_obj)
    except TypeError:
        return None


def drop(spec_obj):
    """Forget what an earlier filter call of this request left."""
    key = _key(spec_obj)
    if key is not None:
        with _lock:
            _entries.pop(key, None)


def put(spec_obj, hosts, keys, weights, clock=time.monotonic):
    """Keep the raw weights of the hosts the filter passed (HostStates,
    their (host, nodename) pairs, their weights: three lists in the
    filter's order) for this request's weigher."""
    key = _key(spec_obj)
    if key is None:
        return
    now = clock()
    with _lock:
        _entries.pop(key, None)
        if len(_entries) >= MAX_ENTRIES:
            for k in [k for k, e in _entries.items() if e[0] < now]:
                del _entries[k]
            while len(_entries) >= MAX_ENTRIES:
                # Dicts keep insertion order: the oldest goes first.
                del _entries[next(iter(_entries))]
        _entries[key] = (now + TTL, _ref(spec_obj), hosts, keys, weights)


def take(spec_obj, hosts, clock=time.monotonic):
    """The kept weights of `hosts` (the HostStates the weigher was given,
    in its order), or None when this request has none that cover every
    one of them."""
    key = _key(spec_obj)
    if key is None:
        return None
    with _lock:
        entry = _entries.pop(key, None)
    if entry is None:
        return None
    deadline, ref, passed, keys, weights = entry
    if clock() > deadline or (ref is not None and ref() is not spec_obj):
        return None
    if hosts == passed:
        # The very HostStates the filter passed, in its order (list
        # equality compares identities first): Nova's usual case, when
        # no filter after StewardFilter removed a host.
        return list(weights)
    # Fewer hosts (a later filter removed some), or others: match them by
    # (host, nodename), as the callout names them.
    by_key = dict(zip(keys, weights, strict=True))
    try:
        return [by_key[(hs.host, hs.nodename or hs.host)] for hs in hosts]
    except (KeyError, AttributeError):
        # A host the filter did not see: ask /v1/weigh for all of them.
        return None


def clear():
    with _lock:
        _entries.clear()
