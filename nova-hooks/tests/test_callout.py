"""What the shim sends and how it reads answers, seen from a recording
server; and story f: a rebuild passes every host without any call."""

import pytest

from conftest import ROUND_TRIP
from conftest import STEWARD_WEIGHER
from conftest import names
from conftest import warnings_of
from harness import nova_scheduler as ns
from steward_nova import client


def hosts_in_az(prefix, n, az='az1'):
    agg = ns.az_aggregate(az)
    return [ns.make_host_state('%s-%d' % (prefix, i), aggregates=[agg],
                               instances=[ns.stable_uuid(prefix, i)])
            for i in range(n)]


def test_one_call_per_request_covers_every_host(nova_conf, fault_server,
                                                tmp_path):
    """Filter and weigher both enabled: ONE round trip, the filter's with
    weigh=true, whose weights the weigher uses."""
    srv = fault_server('ok')
    token_file = tmp_path / 'token'
    token_file.write_text('  s3cret-reader \n')
    hosts = hosts_in_az('one', 25)
    sched = nova_conf.scheduler(srv.url, str(token_file))
    spec = ns.make_request_spec(request_id='req-1b2e8c7e-2c2a-4a0e-'
                                           '9d3e-7f6a5b4c3d2e')
    assert len(sched.schedule(hosts, spec)) == 25

    assert [r['path'] for r in srv.requests] == [ROUND_TRIP]
    for r in srv.requests:
        assert len(r['body']['hosts']) == 25
        assert r['headers']['Authorization'] == 'Bearer s3cret-reader'
        assert r['headers']['X-OpenStack-Request-ID'] == (
            'req-1b2e8c7e-2c2a-4a0e-9d3e-7f6a5b4c3d2e')
        assert r['headers']['Content-Type'] == 'application/json'
        assert r['headers']['Accept'] == 'application/json'
        assert r['headers']['User-Agent'].startswith('steward-nova/')
        assert r['body']['instance']['uuid'] == spec.instance_uuid
        assert r['body']['hosts'][3]['az'] == 'az1'
        assert r['body']['hosts'][3]['instance_uuids'] == [
            ns.stable_uuid('one', 3)]


def test_token_file_change_is_picked_up(nova_conf, fault_server, tmp_path):
    srv = fault_server('ok')
    token_file = tmp_path / 'token'
    token_file.write_text('first\n')
    hosts = hosts_in_az('rot', 2)
    sched = nova_conf.scheduler(srv.url, str(token_file))
    sched.filter(hosts, ns.make_request_spec())
    token_file.write_text('second-and-longer\n')
    sched.filter(hosts, ns.make_request_spec())
    assert [r['headers']['Authorization'] for r in srv.requests] == [
        'Bearer first', 'Bearer second-and-longer']


def test_static_token_option_when_no_token_file(nova_conf, fault_server):
    srv = fault_server('ok')
    sched = nova_conf.scheduler(srv.url, token='inline-token')
    sched.filter(hosts_in_az('inline', 2), ns.make_request_spec())
    assert srv.requests[0]['headers']['Authorization'] == (
        'Bearer inline-token')


def test_instance_uuids_not_sent_when_disabled(nova_conf, fault_server):
    srv = fault_server('ok')
    sched = nova_conf.scheduler(srv.url, send_instance_uuids=False)
    sched.filter(hosts_in_az('nouuids', 2), ns.make_request_spec())
    assert 'instance_uuids' not in srv.requests[0]['body']['hosts'][0]


def test_ironic_nodes_matched_by_host_and_nodename(nova_conf, fault_server,
                                                   shim_log):
    """Steward rejects node-2 of a conductor that serves three nodes:
    exactly that node goes, though all three share the host name."""

    def reject_node_2(req):
        hosts = req['hosts']
        if req['_call'] == 'weigh':
            return 200, {'weights': [
                {'host': h['host'], 'nodename': h['nodename'],
                 'weight': float(i)} for i, h in enumerate(hosts)]}
        return 200, {
            'allowed': [{'host': h['host'], 'nodename': h['nodename']}
                        for h in hosts if h['nodename'] != 'node-2'],
            'rejected': [{'host': h['host'], 'nodename': h['nodename'],
                          'plugin': 'capacity', 'reason': 'in maintenance'}
                         for h in hosts if h['nodename'] == 'node-2']}

    srv = fault_server(reject_node_2)
    hosts = [ns.make_host_state('ironic-cond', nodename='node-%d' % i,
                                hypervisor_type='ironic', vcpus=0,
                                vcpus_used=0, free_ram_mb=0)
             for i in (1, 2, 3)]
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    weighed = sched.schedule(hosts, ns.make_request_spec())
    # Steward weighed node-3 (index 1 of the two sent) above node-1.
    assert [w.obj.nodename for w in weighed] == ['node-3', 'node-1']
    # This steward answers the filter without weights (as one older than
    # weigh=true does): no failure, the weigher asks /v1/weigh.
    assert [r['path'] for r in srv.requests] == [
        ROUND_TRIP, '/v1/weigh']
    assert warnings_of(shim_log) == []
    debug = [r.getMessage() for r in shim_log.records]
    assert any('rejected host ironic-cond node node-2' in m
               and 'in maintenance' in m for m in debug), debug


def test_rebuild_passes_every_host_without_a_call(nova_conf, fault_server):
    """Story f. Nova marks a rebuild with _nova_check_type=rebuild; like
    Nova's own filters with RUN_ON_REBUILD = False, StewardFilter then
    passes every host, and it does so without asking steward."""
    srv = fault_server('missing_hosts')
    hosts = hosts_in_az('rebuild', 4)
    sched = nova_conf.scheduler(srv.url)
    spec = ns.make_request_spec(hints={'_nova_check_type': ['rebuild']})
    passed = sched.filter(hosts, spec)
    assert names(passed) == names(hosts)
    assert [r for r in srv.requests if r['path'] == '/v1/filter'] == []
    # host_passes, Nova's per-host entry point, honours it too (through
    # BaseHostFilter._filter_one).
    steward_filter = sched.filters[-1]
    assert all(steward_filter._filter_one(h, spec) for h in hosts)
    assert srv.requests == []


def test_host_passes_is_one_call_with_one_host(nova_conf, fault_server):
    srv = fault_server('ok')
    sched = nova_conf.scheduler(srv.url)
    steward_filter = sched.filters[-1]
    host = hosts_in_az('single', 1)[0]
    assert steward_filter.host_passes(host, ns.make_request_spec()) is True
    assert len(srv.requests) == 1
    assert [h['host'] for h in srv.requests[0]['body']['hosts']] == [
        'single-0']


def test_weights_are_matched_by_host_not_position(nova_conf, fault_server):
    """An answer in another order still weighs the right hosts."""

    def reversed_weights(req):
        if req['_call'] == 'filter':
            return fault_server_ok(req)
        entries = [{'host': h['host'], 'nodename': h['nodename'],
                    'weight': float(h['host'].endswith('-2'))}
                   for h in req['hosts']]
        return 200, {'weights': entries[::-1]}

    def fault_server_ok(req):
        return 200, {'allowed': [{'host': h['host'], 'nodename': h['nodename']}
                                 for h in req['hosts']]}

    srv = fault_server(reversed_weights)
    hosts = hosts_in_az('order', 4)
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    weighed = sched.schedule(hosts, ns.make_request_spec())
    assert weighed[0].obj.host == 'order-2'
    assert [w.weight for w in weighed] == [1.0, 0.0, 0.0, 0.0]


SENT = [('a', 'a'), ('b', 'b'), ('c', 'c'), ('ironic', 'n1'),
        ('ironic', 'n2')]


def entries(*keys):
    return [{'host': h, 'nodename': n} for h, n in keys]


@pytest.mark.parametrize('answer,expected', [
    ({'allowed': entries(*SENT)}, None),
    ({'allowed': entries(*SENT), 'rejected': []}, None),
    ({'allowed': entries(SENT[0], SENT[2], SENT[4]),
      'rejected': entries(SENT[3], SENT[1])}, [0, 2, 4]),
    ({'allowed': [], 'rejected': entries(*SENT)}, []),
    # Not steward's order, or a nodename left out: still read right.
    ({'allowed': entries(SENT[2], SENT[0]),
      'rejected': entries(*SENT[3:], SENT[1])}, [0, 2]),
    ({'allowed': [{'host': 'a', 'nodename': None}, {'host': 'b'}],
      'rejected': entries(*SENT[2:])}, [0, 1]),
], ids=['all', 'all-empty-rejected', 'some', 'none', 'unordered',
        'default-nodename'])
def test_allowed_indexes(answer, expected):
    assert client.allowed_indexes(answer, SENT) == expected


@pytest.mark.parametrize('answer,what', [
    ({'allowed': entries(*SENT[:4])}, 'neither allowed nor rejected'),
    ({'allowed': entries(*SENT[:4]), 'rejected': entries(SENT[0])},
     'neither allowed nor rejected'),
    ({'allowed': entries(*SENT, ('x', 'x'))}, 'not sent'),
    ({'allowed': entries(*SENT[:4]), 'rejected': entries(('x', 'x'))},
     'not sent'),
    ({'allowed': [{'host': ['a'], 'nodename': 'a'}]}, 'host/nodename'),
    ({'allowed': [{'nodename': 'a'}]}, 'no valid host'),
    ({'allowed': ['a']}, 'no valid host'),
    ({'allowed': 'all'}, 'no "allowed" list'),
], ids=['missing', 'rejected-twice', 'unknown', 'unknown-rejected',
        'unhashable', 'no-host', 'not-object', 'not-list'])
def test_allowed_indexes_rejects_broken_answers(answer, what):
    with pytest.raises(client.CalloutError) as err:
        client.allowed_indexes(answer, SENT)
    assert err.value.kind == 'malformed'
    assert what in err.value.detail


def test_named_answer_of_an_older_steward_is_read(nova_conf, fault_server,
                                                  shim_log):
    """A steward that predates compact answers ignores compact=true and
    names the hosts: the shim reads that answer as before, weights
    included, still in one round trip."""
    srv = fault_server('named')
    hosts = hosts_in_az('named', 5)
    sched = nova_conf.scheduler(srv.url)
    assert len(sched.schedule(hosts, ns.make_request_spec())) == 5
    assert [r['path'] for r in srv.requests] == [
        ROUND_TRIP]
    assert warnings_of(shim_log) == []


def test_compact_answer_rejects_by_index(nova_conf, fault_server,
                                         shim_log):
    """Steward names hosts by their index in the request; the shim keeps
    exactly the allowed ones and hands their weights to the weigher."""

    def reject_odd(req):
        n = len(req['hosts'])
        allowed = [i for i in range(n) if i % 2 == 0]
        return 200, {
            'allowed_indexes': allowed,
            'rejected': [{'index': i, 'host': req['hosts'][i]['host'],
                          'nodename': req['hosts'][i]['nodename'],
                          'plugin': 'role_spread', 'reason': 'at the cap'}
                         for i in range(n) if i % 2],
            'weights': [float(i) for i in allowed]}

    srv = fault_server(reject_odd)
    hosts = hosts_in_az('cmp', 6)
    sched = nova_conf.scheduler(srv.url)
    weighed = sched.schedule(hosts, ns.make_request_spec())
    assert [w.obj.host for w in weighed] == ['cmp-4', 'cmp-2', 'cmp-0']
    assert [r['path'] for r in srv.requests] == [
        ROUND_TRIP]
    assert warnings_of(shim_log) == []
