"""Builds the callout body (docs/callout.md) from Nova's scheduler objects.

Everything here is defensive: a field Nova did not set, or set to something
the contract does not allow (NaN, a negative free RAM), is sent as null,
which steward reads as "unknown". Only a missing instance uuid is an error.
"""

import hashlib
import itertools
import json
import operator

import nova.conf

# Values of the `_nova_check_type` hint that name the operation. Upstream
# Nova only sets `rebuild`; one downstream fork labels moves as well.
LABELLED_OPERATIONS = frozenset(
    ('rebuild', 'live_migrate', 'migrate', 'resize', 'evacuate'))

_INF = float('inf')


class BodyError(Exception):
    """The request spec lacks what the contract requires."""


def count(value):
    """A finite number >= 0, or None. ints stay ints (smaller JSON)."""
    # type() rather than isinstance: this runs ~10 times per host per
    # request, and bool (an int subclass) must not pass as a number.
    t = type(value)
    if t is int:
        return value if value >= 0 else None
    if t is float:
        if value >= 0 and value != _INF:  # NaN fails both comparisons
            return int(value) if value.is_integer() else value
        return None
    return None


def ratio(value):
    """An allocation ratio: finite and > 0 (the contract), else None."""
    value = count(value)
    return value if value else None


def field(obj, name):
    """Read a NovaObject field without lazy-loading it; None if unset.

    Reading an unset field of a RequestSpec calls obj_load_attr, which
    raises: the shim must never raise into Nova, so check first.
    """
    if obj is None:
        return None
    try:
        is_set = getattr(obj, 'obj_attr_is_set', None)
        if is_set is not None and not is_set(name):
            return None
        return getattr(obj, name, None)
    except Exception:
        return None


def configured_default_az():
    """nova.conf [DEFAULT] default_availability_zone, or None if unset.

    Nova's AZ for a host in no AZ aggregate (Selection.from_host_state,
    nova.availability_zones.get_host_availability_zone).
    """
    try:
        return nova.conf.CONF.default_availability_zone or None
    except Exception:
        return None


def _aggregate_az(aggregate):
    metadata = getattr(aggregate, 'metadata', None) or {}
    return metadata.get('availability_zone') or None


def host_az(host_state, default=None):
    """The host's AZ as Nova sees it: its aggregates' availability_zone
    (HostState has no AZ of its own), else `default` (Nova's rule: pass
    configured_default_az()).
    """
    return _az_of(getattr(host_state, 'aggregates', None), default, {})


_FIELDS = ('host', 'nodename', 'uuid', 'hypervisor_type', 'vcpus_total',
           'vcpus_used', 'cpu_allocation_ratio', 'total_usable_ram_mb',
           'free_ram_mb', 'ram_allocation_ratio', 'total_usable_disk_gb',
           'free_disk_mb')


# One C call reads a host's fields, its aggregates and its instances.
_READ_ALL = operator.attrgetter(*_FIELDS, 'aggregates', 'instances')
_N = len(_FIELDS)


def _read_all(hs):
    """The _FIELDS of a HostState, then its aggregates and instances."""
    try:
        return _READ_ALL(hs)
    except AttributeError:
        return (hs.host,) + tuple(getattr(hs, f, None)
                                  for f in _FIELDS[1:] + ('aggregates',
                                                          'instances'))


_UNSEEN = object()


def _az_of(aggregates, default, az_memo):
    """The first AZ among `aggregates`, else `default`.

    `az_memo` ({id(aggregate): (aggregate, AZ)}) lives for one call: Nova
    shares one Aggregate object among all its hosts, and reading its
    metadata through oslo.versionedobjects costs more than the rest of a
    host's entry. The memo holds the aggregate, so its id stays its own.
    """
    for aggregate in aggregates or ():
        seen = az_memo.get(id(aggregate), _UNSEEN)
        if seen is _UNSEEN or seen[0] is not aggregate:
            seen = az_memo[id(aggregate)] = (aggregate,
                                              _aggregate_az(aggregate))
        if seen[1]:
            return seen[1]
    return default


def _inputs(hs, with_instances, default, az_memo):
    """Every HostState value a host entry is made of, in one tuple: what
    _entry builds the entry from."""
    values = _read_all(hs)
    az = _az_of(values[_N], default, az_memo)
    if with_instances:
        instances = values[_N + 1]
        instances = tuple(instances) if instances else ()
    else:
        instances = None
    return values[:_N] + (az, instances)


def _entry(inputs):
    (host, nodename, uuid, hv_type, vcpus_total, vcpus_used, cpu_ratio,
     ram_total, ram_free, ram_ratio, disk_total, free_disk_mb, az,
     instances) = inputs
    free_disk_mb = count(free_disk_mb)
    entry = {
        'host': host,
        'nodename': nodename if nodename else host,
        'uuid': uuid,
        'az': az,
        'hypervisor_type': hv_type,
        'vcpus_total': count(vcpus_total),
        'vcpus_used': count(vcpus_used),
        'cpu_allocation_ratio': ratio(cpu_ratio),
        'memory_mb_total': count(ram_total),
        'memory_mb_free': count(ram_free),
        'ram_allocation_ratio': ratio(ram_ratio),
        'disk_gb_total': count(disk_total),
        'disk_gb_free': (None if free_disk_mb is None
                         else count(free_disk_mb / 1024)),
    }
    if instances is not None:
        entry['instance_uuids'] = list(instances)
    return entry


def host_entry(host_state, with_instances=True, default_az=None):
    """The contract's host object for one HostState."""
    return _entry(_inputs(host_state, with_instances, default_az, {}))


def hint(spec_obj, name):
    """A scheduler hint as Nova's get_scheduler_hint gives it, or None."""
    try:
        return spec_obj.get_scheduler_hint(name)
    except Exception:
        return None


def operation(spec_obj):
    """(operation, source host) of the request.

    Upstream Nova labels only rebuilds; any other move is recognised by the
    source host Nova asks the scheduler to ignore.
    """
    check_type = hint(spec_obj, '_nova_check_type')
    ignore_hosts = field(spec_obj, 'ignore_hosts') or []
    source = ignore_hosts[0] if ignore_hosts else None
    if check_type in LABELLED_OPERATIONS:
        return check_type, source
    if source:
        return 'move', source
    return 'boot', None


def source_az(spec_obj, host_states, default=None):
    """The AZ of a moving instance's source host as Nova's scheduler knows
    it, or None for a boot (no source) or when it cannot be told.

    Nova strips the source host (ignore_hosts) from the candidates, but
    every HostState carries its aggregates as HostManager holds them,
    with their member hosts: an AZ aggregate of any candidate that lists
    the source host gives its AZ, without I/O. When none does (every
    same-AZ host was filtered out), the source host's aggregates are read
    from Nova's API database as HostManager reads them
    (AggregateList.get_by_host); a host in no AZ aggregate is in Nova's
    default AZ (`default`).
    """
    _, source = operation(spec_obj)
    if not source:
        return None
    seen = set()
    for hs in host_states:
        for aggregate in getattr(hs, 'aggregates', None) or ():
            if id(aggregate) in seen:
                continue
            seen.add(id(aggregate))
            az = _aggregate_az(aggregate)
            if az and source in (getattr(aggregate, 'hosts', None) or ()):
                return az
    return _source_az_from_db(spec_obj, source, default)


def unshelved(spec_obj, default=None):
    """(True, the AZ it ran in) when this request unshelves its instance,
    else None. The AZ is None when it cannot be told.

    Nova schedules an unshelve as a boot: no source host, nothing in the
    RequestSpec that says so. But an unshelve (like a move) comes
    restricted to the instance's cell (requested_destination.cell, set by
    conductor), which a new boot is not, so only such requests pay for a
    look at the instance in that cell. SHELVED_OFFLOADED means an
    unshelve. Nova clears the instance's availability_zone when it
    offloads it, but keeps the host it ran on (system_metadata
    `shelved_host`), whose AZ is read as for a move's source host (a host
    in no AZ aggregate is in `default`).
    """
    dest = field(spec_obj, 'requested_destination')
    cell = field(dest, 'cell')
    uuid = field(spec_obj, 'instance_uuid')
    if cell is None or field(dest, 'host') or not uuid:
        return None
    try:
        from nova import context as nova_context
        from nova import objects
        ctx = getattr(spec_obj, '_context', None)
        ctx = ctx.elevated() if ctx is not None else (
            nova_context.get_admin_context())
        with nova_context.target_cell(ctx, cell) as cctx:
            instance = objects.Instance.get_by_uuid(
                cctx, str(uuid), expected_attrs=['system_metadata'])
    except Exception:
        return None
    if getattr(instance, 'vm_state', None) != 'shelved_offloaded':
        return None
    az = getattr(instance, 'availability_zone', None)
    if az:
        return True, az
    meta = getattr(instance, 'system_metadata', None) or {}
    host = meta.get('shelved_host')
    return True, (_source_az_from_db(spec_obj, host, default)
                  if host else None)


def _source_az_from_db(spec_obj, source, default):
    try:
        from nova import context as nova_context
        from nova import objects
        ctx = getattr(spec_obj, '_context', None)
        ctx = ctx.elevated() if ctx is not None else (
            nova_context.get_admin_context())
        aggregates = objects.AggregateList.get_by_host(
            ctx, source, key='availability_zone')
    except Exception:
        return None
    for aggregate in aggregates:
        az = _aggregate_az(aggregate)
        if az:
            return az
    return default


def flavor_entry(flavor):
    if flavor is None:
        return None
    entry = {
        'name': field(flavor, 'name'),
        'vcpus': count(field(flavor, 'vcpus')),
        'memory_mb': count(field(flavor, 'memory_mb')),
        'root_gb': count(field(flavor, 'root_gb')),
        'ephemeral_gb': count(field(flavor, 'ephemeral_gb')),
        'swap': count(field(flavor, 'swap')),
    }
    extra_specs = field(flavor, 'extra_specs')
    entry['extra_specs'] = dict(extra_specs) if extra_specs else {}
    return entry


def server_group_entry(group):
    if group is None:
        return None
    members = field(group, 'members')
    return {
        'uuid': field(group, 'uuid'),
        'name': field(group, 'name'),
        'policy': field(group, 'policy'),
        'members': list(members) if members else [],
    }


def request_base(spec_obj, instance_extra=None, operation_name=None):
    """Everything but the hosts: computed once per callout.
    `instance_extra` adds to (or replaces in) the instance object;
    `operation_name` names an operation the RequestSpec does not tell
    (an unshelve, found by unshelved)."""
    instance_uuid = field(spec_obj, 'instance_uuid')
    if not instance_uuid:
        raise BodyError(
            'the RequestSpec has no instance_uuid, which the callout '
            'requires')
    op, source = operation(spec_obj)
    hints = field(spec_obj, 'scheduler_hints')
    instance = {
        'uuid': str(instance_uuid),
        'project_id': field(spec_obj, 'project_id'),
        'flavor': flavor_entry(field(spec_obj, 'flavor')),
        'requested_az': field(spec_obj, 'availability_zone'),
        'current_host': source,
        # Filled in by source_az() for a move (client.call).
        'current_az': None,
        'scheduler_hints': (
            {k: list(v) if isinstance(v, (list, tuple)) else v
             for k, v in hints.items()} if hints else {}),
        'server_group': server_group_entry(field(spec_obj, 'instance_group')),
    }
    if instance_extra:
        instance.update(instance_extra)
    return {
        'operation': operation_name or op,
        'instance': instance,
        'ignore_hosts': list(field(spec_obj, 'ignore_hosts') or []),
    }


def build(host_states, spec_obj, with_instances=True, default_az=_UNSEEN):
    """The whole body as a dict. A host in no AZ aggregate is in
    `default_az`: nova.conf's default_availability_zone unless given."""
    if default_az is _UNSEEN:
        default_az = configured_default_az()
    body = request_base(spec_obj)
    memo = {}
    body['hosts'] = [_entry(_inputs(hs, with_instances, default_az, memo))
                     for hs in host_states]
    return body


# check_circular off: entries are trees of plain values built here.
_ENCODE = json.JSONEncoder(allow_nan=False, separators=(',', ':'),
                           check_circular=False).encode

# The last encoding of each host, for one (default AZ, with instances?)
# pair: id(HostState) -> (what was read of it, entry, the HostState), `entry`
# being what encode_hosts gives for it. Nova keeps one HostState per compute
# node across requests (HostManager.host_state_map) and most do not change
# between two scheduling requests (never between the filter and the weigher
# of one), so an unchanged host costs one read and one comparison of values
# it already holds (identical objects compare without being read) instead
# of building its entry again. Its AZ comes from its aggregates: Nova
# replaces an updated aggregate with a new object
# (HostManager._update_aggregate), so the same aggregate objects mean the
# same AZ. The entry holds the HostState, so its id stays its own while
# cached. One dict per pair, so that a hit needs no other check than the
# comparison of what was read.
_ENCODED = {}
# Bound for clouds whose hosts come and go: forget everything past it.
_MAX_ENCODED = 50000

# What is read of a host for an entry without instances.
_READ_NO_INSTANCES = operator.attrgetter(*_FIELDS, 'aggregates')
_MISS = (None, None, None)
_WHAT_WAS_READ = operator.itemgetter(0)
_ENTRY = operator.itemgetter(1)


def _snapshot(values):
    """What a later read of the same HostState is compared with: the
    aggregates list and Nova's {uuid: Instance} (both often mutated in
    place) copied."""
    aggregates = values[_N]
    if type(aggregates) is list:
        aggregates = list(aggregates)
    if len(values) == _N + 1:
        return values[:_N] + (aggregates,)
    instances = values[_N + 1]
    t = type(instances)
    if t is dict or t is list:
        instances = t(instances)
    return values[:_N] + (aggregates, instances)


def reference(fragment):
    """The host reference of an encoded host entry (docs/callout.md, "Host
    references"), as it goes in the body: the first 16 bytes of the
    SHA-256 of its JSON text, in hex, quoted."""
    return b'"%s"' % hashlib.sha256(fragment).hexdigest()[:32].encode()


def _read_each(host_states, with_instances):
    """What _read_all gives, host by host (some HostState lacks a field)."""
    if with_instances:
        return [_read_all(hs) for hs in host_states]
    return [_read_all(hs)[:_N + 1] for hs in host_states]


def encode_hosts(host_states, with_instances=True, default_az=None):
    """[((host, nodename), JSON bytes, reference)] of the host entries, in
    order: each entry in full, and the reference steward may know it by.

    Nova's scheduler calls this with every candidate host on every
    request, and nearly all are unchanged since the last one: reading them,
    finding their last encoding and comparing are each one pass in C
    (map), and Python runs only for the hosts that changed.
    """
    hosts = list(host_states)
    cache = _ENCODED.get((default_az, with_instances))
    if cache is None:
        if len(_ENCODED) >= 4:
            _ENCODED.clear()
        cache = _ENCODED[(default_az, with_instances)] = {}
    try:
        values = list(map(_READ_ALL if with_instances
                          else _READ_NO_INSTANCES, hosts))
    except AttributeError:
        values = _read_each(hosts, with_instances)
    hits = list(map(cache.get, map(id, hosts), itertools.repeat(_MISS)))
    out = list(map(_ENTRY, hits))
    same = list(map(operator.eq, map(_WHAT_WAS_READ, hits), values))
    if all(same):
        return out
    memo = {}
    for i in itertools.compress(range(len(hosts)),
                                map(operator.not_, same)):
        snapshot = _snapshot(values[i])
        if with_instances:
            instances = snapshot[_N + 1]
            instances = tuple(instances) if instances else ()
        else:
            instances = None
        entry = _entry(values[i][:_N] + (
            _az_of(snapshot[_N], default_az, memo), instances))
        fragment = _ENCODE(entry).encode()
        done = ((entry['host'], entry['nodename']), fragment,
                reference(fragment))
        if sum(map(len, _ENCODED.values())) >= _MAX_ENCODED:
            for c in _ENCODED.values():
                c.clear()
        # A plain dict under the GIL, one value per host: a race costs at
        # most one extra encoding.
        cache[id(hosts[i])] = (snapshot, done, hosts[i])
        out[i] = done
    return out


def encode_host(host_state, with_instances=True, default_az=None):
    """((host, nodename), JSON bytes, reference) of one host entry."""
    return encode_hosts([host_state], with_instances, default_az)[0]


def encode(spec_obj, fragments, instance_extra=None, operation_name=None):
    """The request body as bytes, from host entries already encoded (JSON
    bytes): one copy of them, however many hosts."""
    head = _ENCODE(request_base(spec_obj, instance_extra, operation_name))
    return b''.join((head[:-1].encode(), b',"hosts":[', b','.join(fragments),
                     b']}'))


def forget_encoded():
    _ENCODED.clear()
