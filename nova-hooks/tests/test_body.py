"""The callout body built from Nova's real objects (no steward needed)."""

import contextlib
import json

from nova import objects
from nova.scheduler import host_manager
from nova.scheduler import utils as scheduler_utils
from nova.scheduler import weights
import pytest

from harness import nova_scheduler as ns
from steward_nova import body
from steward_nova.weighers import StewardWeigher

U1 = ns.stable_uuid('instance', 1)
U2 = ns.stable_uuid('instance', 2)


@contextlib.contextmanager
def default_az_option(value):
    """nova.conf [DEFAULT] default_availability_zone for a while."""
    ns.CONF.set_override('default_availability_zone', value)
    try:
        yield
    finally:
        ns.CONF.clear_override('default_availability_zone')


def test_host_entry_carries_nova_view_and_az_from_aggregate():
    agg = ns.az_aggregate('az2', hosts=['cmp-b1'])
    hs = ns.make_host_state('cmp-b1', aggregates=[agg],
                            instances=[U1, U2], vcpus=32,
                            vcpus_used=6, memory_mb=131072,
                            free_ram_mb=100000, disk_gb=1000,
                            free_disk_gb=700, cpu_allocation_ratio=2.5)
    entry = body.host_entry(hs)
    assert entry == {
        'host': 'cmp-b1', 'nodename': 'cmp-b1', 'uuid': hs.uuid,
        'az': 'az2', 'hypervisor_type': 'QEMU', 'vcpus_total': 32,
        'vcpus_used': 6, 'cpu_allocation_ratio': 2.5,
        'memory_mb_total': 131072, 'memory_mb_free': 100000,
        'ram_allocation_ratio': 1, 'disk_gb_total': 1000,
        'disk_gb_free': 700, 'instance_uuids': [U1, U2],
    }


def test_host_without_az_aggregate_is_in_nova_default_az():
    """Nova's rule (Selection.from_host_state, availability_zones.
    get_host_availability_zone): no aggregate with an availability_zone
    puts the host in [DEFAULT] default_availability_zone."""
    other = ns.make_aggregate('fast-disks', {'ssd': 'true'})
    hs = ns.make_host_state('cmp-x1', aggregates=[other])
    in_az = ns.make_host_state('cmp-a1', aggregates=[
        other, ns.az_aggregate('az1')])
    # Nova's own default for the option is "nova".
    assert body.configured_default_az() == 'nova'
    assert [e['az'] for e in body.build([hs, in_az],
                                        ns.make_request_spec())['hosts']] == [
        'nova', 'az1']
    with default_az_option('az-dflt'):
        assert body.build([hs], ns.make_request_spec())['hosts'][0][
            'az'] == 'az-dflt'
    # Unset (empty) is unknown: null, and steward uses its own view.
    with default_az_option(''):
        assert body.configured_default_az() is None
        assert body.build([hs], ns.make_request_spec())['hosts'][0][
            'az'] is None
    assert body.host_entry(hs)['az'] is None
    assert body.host_entry(hs, default_az='az9')['az'] == 'az9'


def test_default_az_reaches_steward_and_follows_the_option(nova_conf,
                                                          fault_server):
    """Through Nova's handlers and the encoded-host cache: a changed
    default_availability_zone shows in the next request's body."""
    srv = fault_server('ok')
    hosts = [ns.make_host_state('dflt-x1'),
             ns.make_host_state('dflt-a1',
                                aggregates=[ns.az_aggregate('az1')])]
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[])
    sched.filter(hosts, ns.make_request_spec())
    with default_az_option('zone-b'):
        sched.filter(hosts, ns.make_request_spec())
    assert [[h['az'] for h in r['body']['hosts']] for r in srv.requests] == [
        ['nova', 'az1'], ['zone-b', 'az1']]


def test_unset_and_impossible_numbers_become_null_never_nan():
    # A HostState whose compute node has not reported yet, then values
    # the contract forbids: Nova lets free_ram_mb go negative.
    hs = host_manager.HostState('cmp-new', 'cmp-new', ns.CELL_UUID)
    hs.free_ram_mb = -512
    hs.cpu_allocation_ratio = float('nan')
    hs.ram_allocation_ratio = 0.0
    hs.total_usable_disk_gb = float('inf')
    hs.free_disk_mb = None
    entry = body.host_entry(hs)
    assert entry['memory_mb_free'] is None
    assert entry['cpu_allocation_ratio'] is None
    assert entry['ram_allocation_ratio'] is None
    assert entry['disk_gb_total'] is None
    assert entry['disk_gb_free'] is None
    assert entry['uuid'] is None and entry['az'] is None  # no default given
    assert entry['vcpus_total'] == 0 and entry['instance_uuids'] == []
    json.dumps(entry, allow_nan=False)


def test_ironic_nodes_of_one_host_keep_their_nodenames():
    hosts = [ns.make_host_state('ironic-cond', nodename=n,
                                hypervisor_type='ironic', vcpus=0,
                                vcpus_used=0, free_ram_mb=0)
             for n in ('node-1', 'node-2')]
    entries = body.build(hosts, ns.make_request_spec())['hosts']
    assert [(e['host'], e['nodename']) for e in entries] == [
        ('ironic-cond', 'node-1'), ('ironic-cond', 'node-2')]
    assert entries[0]['vcpus_total'] == 0
    assert entries[0]['hypervisor_type'] == 'ironic'


def test_instance_part_from_request_spec():
    group = ns.make_server_group('web-tier', policy='soft-anti-affinity',
                                 members=['m-1', 'm-2'])
    flavor = ns.make_flavor('m1.web', vcpus=2, memory_mb=4096,
                            extra_specs={'steward:profile': 'web'})
    spec = ns.make_request_spec(
        instance_uuid='6f1f0d5e-7a43-4b0e-9c9e-2d0d6f0c1a11',
        flavor=flavor, availability_zone='az1',
        hints={'steward_role': ['web'], 'group': ['x']},
        instance_group=group, project_id='a1b2c3')
    got = body.build([], spec)
    assert got['operation'] == 'boot'
    assert got['ignore_hosts'] == []
    inst = got['instance']
    assert inst['uuid'] == '6f1f0d5e-7a43-4b0e-9c9e-2d0d6f0c1a11'
    assert inst['project_id'] == 'a1b2c3'
    assert inst['requested_az'] == 'az1'
    assert inst['current_host'] is None
    assert inst['flavor'] == {
        'name': 'm1.web', 'vcpus': 2, 'memory_mb': 4096, 'root_gb': 20,
        'ephemeral_gb': 0, 'swap': 0,
        'extra_specs': {'steward:profile': 'web'}}
    assert inst['scheduler_hints'] == {'steward_role': ['web'],
                                       'group': ['x']}
    assert inst['server_group'] == {
        'uuid': group.uuid, 'name': 'web-tier',
        'policy': 'soft-anti-affinity', 'members': ['m-1', 'm-2']}


def test_bare_request_spec_builds_with_unknowns():
    # Only the uuid set: every other field must read as unknown, not raise
    # (Nova's lazy-loading would raise on an unset field).
    spec = objects.RequestSpec(instance_uuid='0a1b2c3d-0000-4000-8000-'
                                             '000000000001')
    got = body.build([ns.make_host_state('cmp-a1')], spec)
    assert got['operation'] == 'boot'
    assert got['instance']['flavor'] is None
    assert got['instance']['server_group'] is None
    assert got['instance']['scheduler_hints'] == {}
    assert got['instance']['project_id'] is None
    json.dumps(got, allow_nan=False)


def test_missing_instance_uuid_is_a_body_error():
    with pytest.raises(body.BodyError):
        body.build([], objects.RequestSpec())


@pytest.mark.parametrize('check_type,ignore,expected', [
    (None, None, ('boot', None)),
    (None, ['cmp-src'], ('move', 'cmp-src')),
    ('rebuild', None, ('rebuild', None)),
    ('live_migrate', ['cmp-src'], ('live_migrate', 'cmp-src')),
    ('migrate', ['cmp-src'], ('migrate', 'cmp-src')),
    ('resize', ['cmp-src'], ('resize', 'cmp-src')),
    ('evacuate', ['cmp-src'], ('evacuate', 'cmp-src')),
    # A label this shim does not know is no operation name: fall back.
    ('something-new', ['cmp-src'], ('move', 'cmp-src')),
    ('something-new', None, ('boot', None)),
])
def test_operation(check_type, ignore, expected):
    hints = {'_nova_check_type': [check_type]} if check_type else None
    spec = ns.make_request_spec(hints=hints, ignore_hosts=ignore)
    assert body.operation(spec) == expected
    assert body.build([], spec)['instance']['current_host'] == expected[1]


def test_instance_uuids_can_be_left_out():
    hs = ns.make_host_state('cmp-a1', instances=[U1])
    assert 'instance_uuids' not in body.host_entry(hs, with_instances=False)


def test_weight_multiplier_from_config_and_aggregate(nova_conf):
    nova_conf.scheduler('http://127.0.0.1:9', weight_multiplier=1.5)
    plain = ns.make_host_state('cmp-a1')
    tuned = ns.make_host_state('cmp-a2', aggregates=[ns.make_aggregate(
        'steal-sensitive', {'steward_weight_multiplier': '4.0'})])
    weigher = StewardWeigher()
    assert weigher.weight_multiplier(plain) == 1.5
    assert weigher.weight_multiplier(tuned) == 4.0


def test_weight_multiplier_is_novas_for_every_aggregate_layout(nova_conf):
    """The shortcut for hosts whose aggregates set no multiplier gives
    what Nova's get_weight_multiplier gives, for every layout, before
    and after aggregates are seen (and replaced, as Nova replaces an
    updated aggregate with a new object)."""
    nova_conf.scheduler('http://127.0.0.1:9', weight_multiplier=1.5)
    az = ns.az_aggregate('az1')
    ssd = ns.make_aggregate('ssd', {'ssd': 'true'})
    four = ns.make_aggregate('m4', {'steward_weight_multiplier': '4.0'})
    two = ns.make_aggregate('m2', {'steward_weight_multiplier': '2'})
    bad = ns.make_aggregate('mbad', {'steward_weight_multiplier': 'x'})
    layouts = [[], [az], [az, ssd], [az, four], [ssd, four, two], [bad],
               [az, bad, ssd]]
    hosts = [ns.make_host_state('mult-%d' % i, aggregates=aggs)
             for i, aggs in enumerate(layouts)]
    weigher = StewardWeigher()
    expected = [scheduler_utils.get_weight_multiplier(
        h, 'steward_weight_multiplier', 1.5) for h in hosts]
    assert expected == [1.5, 1.5, 1.5, 4.0, 2.0, 1.5, 1.5]
    for _ in range(2):
        assert [weigher.weight_multiplier(h) for h in hosts] == expected
    # The ssd aggregate now sets a multiplier: Nova sends a new object.
    ssd_now = ns.make_aggregate('ssd', {'ssd': 'true',
                                        'steward_weight_multiplier': '0.5'})
    hosts[2].aggregates = [az, ssd_now]
    assert weigher.weight_multiplier(hosts[2]) == 0.5


def test_weight_multiplier_after_weigh_objects_is_novas(nova_conf):
    """After weigh_objects (Nova's handler then asks weight_multiplier
    for each host) the answers are Nova's: for the hosts just weighed,
    whether an aggregate among them sets a multiplier or none does, and
    for any other host."""
    nova_conf.scheduler('http://127.0.0.1:9', weight_multiplier=1.5)
    az = ns.az_aggregate('az1')
    ssd = ns.make_aggregate('ssd', {'ssd': 'true'})
    four = ns.make_aggregate('m4', {'steward_weight_multiplier': '4.0'})
    plain = [ns.make_host_state('wm-%d' % i, aggregates=aggs)
             for i, aggs in enumerate([[], [az], [az, ssd]])]
    tuned = ns.make_host_state('wm-tuned', aggregates=[az, four])
    weigher = StewardWeigher()
    spec = ns.make_request_spec()

    def novas(hosts):
        return [scheduler_utils.get_weight_multiplier(
            h, 'steward_weight_multiplier', 1.5) for h in hosts]

    for weighed in (plain, plain + [tuned], [tuned]):
        # No steward at :9: the weigher fails open, the multipliers stay.
        weigher.weigh_objects(
            [weights.WeighedHost(h, 0.0) for h in weighed], spec)
        # The dict stands in only when no aggregate sets a multiplier.
        assert ('weight_multiplier' in vars(weigher)) == (
            tuned not in weighed)
        everyone = plain + [tuned, ns.make_host_state('wm-other')]
        assert ([weigher.weight_multiplier(h) for h in everyone]
                == novas(everyone) == [1.5, 1.5, 1.5, 4.0, 1.5])


def encoded_body(hosts, spec, with_instances=True):
    fragments = [f for _, f, _ in body.encode_hosts(hosts, with_instances)]
    return json.loads(body.encode(spec, fragments))


def test_encoded_bytes_are_the_built_body():
    body.forget_encoded()
    agg = ns.az_aggregate('az1')
    hosts = [ns.make_host_state('enc-%d' % i, aggregates=[agg],
                                instances=[ns.stable_uuid('enc', i)],
                                cpu_allocation_ratio=1.5)
             for i in range(3)]
    spec = ns.make_request_spec(hints={'steward_role': ['web']},
                                ignore_hosts=['enc-src'])
    for _ in range(2):  # cold, then from the encoded-host cache
        assert encoded_body(hosts, spec) == body.build(hosts, spec)


def test_a_changed_host_is_encoded_again():
    """The cache is keyed on every value an entry is made of: what Nova
    changes between requests (a consumed host, a new instance, another
    AZ aggregate) shows in the next body."""
    hs = ns.make_host_state('chg-1', aggregates=[ns.az_aggregate('az1')],
                            free_ram_mb=8192, vcpus_used=2)
    spec = ns.make_request_spec(flavor=ns.make_flavor(
        vcpus=2, memory_mb=2048, root_gb=10))
    first = encoded_body([hs], spec)['hosts'][0]
    assert (first['memory_mb_free'], first['vcpus_used']) == (8192, 2)

    hs.consume_from_request(spec)
    hs.update(aggregates=[ns.az_aggregate('az2')],
              inst_dict={U1: ns.make_instance(U1, 'chg-1')})
    second = encoded_body([hs], spec)['hosts'][0]
    assert (second['memory_mb_free'], second['vcpus_used']) == (6144, 4)
    assert second['az'] == 'az2' and second['instance_uuids'] == [U1]
    assert 'instance_uuids' not in encoded_body(
        [hs], spec, with_instances=False)['hosts'][0]


def test_an_instance_added_in_place_is_encoded_again():
    """Nova adds an instance to a HostState's own dict (no new object):
    the next body still lists it, and one removed in place is gone."""
    hs = ns.make_host_state('chg-2', aggregates=[ns.az_aggregate('az1')])
    spec = ns.make_request_spec()
    assert encoded_body([hs], spec)['hosts'][0]['instance_uuids'] == []
    hs.instances[U1] = ns.make_instance(U1, 'chg-2')
    assert encoded_body([hs], spec)['hosts'][0]['instance_uuids'] == [U1]
    del hs.instances[U1]
    assert encoded_body([hs], spec)['hosts'][0]['instance_uuids'] == []


def test_a_new_host_state_of_the_same_node_is_read_anew():
    """A HostState Nova builds anew for a known node (after a restart of
    its host manager) is its own cache entry."""
    first = ns.make_host_state('chg-3', free_ram_mb=4096)
    spec = ns.make_request_spec()
    assert encoded_body([first], spec)['hosts'][0]['memory_mb_free'] == 4096
    second = ns.make_host_state('chg-3', free_ram_mb=1024)
    assert encoded_body([second], spec)['hosts'][0]['memory_mb_free'] == 1024
