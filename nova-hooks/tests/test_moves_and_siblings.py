"""What the shim adds for a move (its source host's AZ) and for a
multi-create (where Nova put the earlier instances), from Nova's real
HostState and RequestSpec objects; no steward needed."""

from harness import nova_scheduler as ns
from steward_nova import body
from steward_nova import siblings


def az_layout():
    az1 = ns.az_aggregate('az1', hosts=['a1', 'a2'])
    az2 = ns.az_aggregate('az2', hosts=['b1', 'b2'])
    return az1, az2


def test_a_move_carries_its_source_hosts_az_from_the_candidates_aggregates():
    """The source host (b1) is not a candidate, but az2's aggregate of
    candidate b2 lists it: that is its AZ, as Nova's HostManager holds it."""
    az1, az2 = az_layout()
    hosts = [ns.make_host_state('a1', aggregates=[az1]),
             ns.make_host_state('b2', aggregates=[az2])]
    spec = ns.make_request_spec(ignore_hosts=['b1'])
    assert body.source_az(spec, hosts) == 'az2'
    # The body carries it for steward.
    sent = body.request_base(spec, {'current_az': 'az2'})
    assert sent['instance']['current_az'] == 'az2'
    assert sent['instance']['current_host'] == 'b1'


def test_a_boot_carries_no_current_az():
    az1, _ = az_layout()
    hosts = [ns.make_host_state('a1', aggregates=[az1])]
    assert body.source_az(ns.make_request_spec(), hosts) is None


def test_an_unlisted_source_host_without_a_database_stays_unknown():
    """No candidate's aggregate lists the source and Nova's database
    cannot be read here: None (steward then refuses, fail-closed), never a
    guess."""
    az1, _ = az_layout()
    hosts = [ns.make_host_state('a1', aggregates=[az1])]
    spec = ns.make_request_spec(ignore_hosts=['elsewhere'])
    assert body.source_az(spec, hosts) is None


def _consume(hs):
    """What Nova's _consume_selected_host does to the chosen HostState."""
    hs.num_instances += 1


def test_a_multi_create_reports_where_each_earlier_instance_went():
    siblings.clear()
    hosts = [ns.make_host_state(h) for h in ('h1', 'h2', 'h3')]
    spec = ns.make_request_spec(instance_uuid=ns.stable_uuid('i', 0))
    spec.num_instances = 3
    first = siblings.observe(spec, hosts, ns.stable_uuid('i', 0), 3)
    assert first == ([], True)
    _consume(hosts[1])
    second = siblings.observe(spec, hosts, ns.stable_uuid('i', 1), 3)
    assert second == ([{'uuid': ns.stable_uuid('i', 0), 'host': 'h2',
                        'nodename': 'h2'}], True)
    _consume(hosts[1])
    placed, complete = siblings.observe(spec, hosts[1:],
                                        ns.stable_uuid('i', 2), 3)
    assert complete
    assert [(p['uuid'], p['host']) for p in placed] == [
        (ns.stable_uuid('i', 0), 'h2'), (ns.stable_uuid('i', 1), 'h2')]


def test_an_ambiguous_pick_is_not_guessed():
    """Two hosts consumed between two instances (another request took one
    at the same time): the pick is left out and marked incomplete."""
    siblings.clear()
    hosts = [ns.make_host_state(h) for h in ('h1', 'h2')]
    spec = ns.make_request_spec()
    siblings.observe(spec, hosts, 'u0', 2)
    _consume(hosts[0])
    _consume(hosts[1])
    assert siblings.observe(spec, hosts, 'u1', 2) == ([], False)


def test_a_single_instance_request_keeps_nothing():
    siblings.clear()
    spec = ns.make_request_spec()
    assert siblings.observe(spec, [ns.make_host_state('h1')], 'u', 1) == (
        [], True)
    assert not siblings._entries


def _unshelve_spec(cell=True, host=None):
    from nova import objects
    spec = ns.make_request_spec(instance_uuid=ns.stable_uuid('shelved', 0))
    if cell or host:
        dest = objects.Destination()
        if cell:
            dest.cell = objects.CellMapping(uuid=ns.stable_uuid('cell', 1),
                                            name='cell1')
        if host:
            dest.host = host
        spec.requested_destination = dest
    return spec


class _Instance:
    def __init__(self, vm_state, az, shelved_host=None):
        self.vm_state, self.availability_zone = vm_state, az
        self.system_metadata = (
            {'shelved_host': shelved_host} if shelved_host else {})


def _patch_cell_read(monkeypatch, instance):
    """Nova's cell-targeted read of the instance, recorded."""
    import contextlib

    from nova import context as nova_context
    from nova import objects
    asked = []

    @contextlib.contextmanager
    def target_cell(ctx, cell):
        asked.append(cell.name)
        yield ctx

    def get_by_uuid(ctx, uuid, expected_attrs=None):
        asked.append(uuid)
        if isinstance(instance, Exception):
            raise instance
        return instance
    monkeypatch.setattr(nova_context, 'target_cell', target_cell)
    monkeypatch.setattr(objects.Instance, 'get_by_uuid', get_by_uuid)
    return asked


def test_an_unshelve_is_told_by_its_instance_and_carries_its_az(monkeypatch):
    """Conductor restricts an unshelve to the instance's cell; there the
    instance is SHELVED_OFFLOADED. Nova cleared its availability_zone on
    offload; the host it ran on (system_metadata shelved_host) gives the
    AZ, read as a move's source host is."""
    asked = _patch_cell_read(monkeypatch, _Instance(
        'shelved_offloaded', None, shelved_host='b1'))
    monkeypatch.setattr(body, '_source_az_from_db',
                        lambda spec, host, default: {'b1': 'az2'}.get(
                            host, default))
    spec = _unshelve_spec()
    assert body.unshelved(spec) == (True, 'az2')
    assert asked == ['cell1', ns.stable_uuid('shelved', 0)]
    sent = body.request_base(spec, {'current_az': 'az2'}, 'unshelve')
    assert (sent['operation'], sent['instance']['current_az']) == (
        'unshelve', 'az2')
    # An AZ Nova kept wins; no host at all: an unshelve of unknown AZ.
    _patch_cell_read(monkeypatch, _Instance('shelved_offloaded', 'az3'))
    assert body.unshelved(spec) == (True, 'az3')
    _patch_cell_read(monkeypatch, _Instance('shelved_offloaded', None))
    assert body.unshelved(spec) == (True, None)


def test_a_new_boot_or_a_running_instance_is_no_unshelve(monkeypatch):
    """The controls: a boot is not cell-restricted and costs no read; a
    --host boot neither; a running instance or a failed read is no
    unshelve (the request then stays a boot)."""
    asked = _patch_cell_read(monkeypatch, _Instance('shelved_offloaded',
                                                    'az2'))
    assert body.unshelved(ns.make_request_spec()) is None
    assert body.unshelved(_unshelve_spec(cell=False, host='b1')) is None
    assert asked == []
    _patch_cell_read(monkeypatch, _Instance('active', 'az2'))
    assert body.unshelved(_unshelve_spec()) is None
    _patch_cell_read(monkeypatch, RuntimeError('cell database away'))
    assert body.unshelved(_unshelve_spec()) is None
