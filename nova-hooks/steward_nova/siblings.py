"""Where Nova put the earlier instances of one multi-create request.

For `openstack server create --min N --max N` Nova's scheduler runs the
filters and weighers once per instance, with ONE RequestSpec whose
instance_uuid it changes each time, over the hosts the previous instance's
filtering kept (nova/scheduler/manager.py, _schedule). Between two
instances it consumes the chosen host: HostState.consume_from_request adds
one to that HostState's num_instances (and, with a server group only, puts
the instance in its `instances`). Nothing tells the filter which host was
chosen, so steward, asked for instance k, would count none of instances
1..k-1: a role cap of 2 let three of one request onto one host.

So the filter remembers, per RequestSpec (id and weak reference, like
handoff.py), the instance it last asked about and each host's
num_instances at that moment. Asked about the next instance of the same
spec, the one host whose num_instances went up by one is where the
previous instance went; the callout then carries every earlier instance
with its host (`instance.siblings`, docs/callout.md) and steward counts
them as if they already ran there. When no host, or more than one host,
changed (another request consumed a shared HostState at the same moment),
the pick is not guessed: it is left out and the callout says so
(`siblings_complete: false`), and steward marks the answer degraded.
"""

import threading
import weakref

# Entries are dropped when the RequestSpec is gone (weak reference) or when
# more than this many requests are in flight in one scheduler process.
MAX_ENTRIES = 256

_lock = threading.Lock()
# id(spec) -> _Entry
_entries = {}


class _Entry:
    __slots__ = ('ref', 'last_uuid', 'counts', 'siblings', 'complete')

    def __init__(self, ref):
        self.ref = ref
        self.last_uuid = None
        # id(HostState) -> (HostState, its num_instances when last sent)
        self.counts = {}
        self.siblings = []
        self.complete = True


def _num_instances(hs):
    try:
        n = hs.num_instances
        return n if type(n) is int else None
    except Exception:
        return None


def _find_pick(entry, hosts):
    """The HostState whose num_instances went up by one since the last
    call, if exactly one did."""
    changed = []
    for hs, before in entry.counts.values():
        now = _num_instances(hs)
        if before is not None and now is not None and now == before + 1:
            changed.append(hs)
    return changed[0] if len(changed) == 1 else None


def observe(spec_obj, host_states, instance_uuid, num_instances):
    """Called by the filter before it asks steward: returns (siblings,
    complete) for this instance of the request, and remembers the hosts'
    num_instances for the next instance. A single-instance request
    returns ([], True) and keeps nothing."""
    if not num_instances or num_instances <= 1:
        return [], True
    key = id(spec_obj)
    with _lock:
        entry = _entries.get(key)
        if entry is not None and entry.ref() is not spec_obj:
            entry = None
        if entry is None:
            if len(_entries) >= MAX_ENTRIES:
                for k in [k for k, e in _entries.items() if e.ref() is None]:
                    del _entries[k]
                while len(_entries) >= MAX_ENTRIES:
                    del _entries[next(iter(_entries))]
            try:
                ref = weakref.ref(spec_obj)
            except TypeError:
                return [], True
            entry = _entries[key] = _Entry(ref)
    if entry.last_uuid is not None and entry.last_uuid != instance_uuid:
        picked = _find_pick(entry, host_states)
        if picked is None:
            entry.complete = False
        else:
            entry.siblings.append({
                'uuid': entry.last_uuid, 'host': picked.host,
                'nodename': getattr(picked, 'nodename', None) or picked.host})
    entry.last_uuid = instance_uuid
    entry.counts = {id(hs): (hs, _num_instances(hs)) for hs in host_states}
    return list(entry.siblings), entry.complete


def clear():
    with _lock:
        _entries.clear()
