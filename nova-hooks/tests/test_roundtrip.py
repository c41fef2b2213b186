"""One round trip per scheduling request (docs/callout.md,
POST /v1/filter?weigh=true): the filter keeps the weights steward gave
with its answer, the weigher of the SAME request uses them, through
Nova's real handlers; anything else makes the weigher call /v1/weigh."""

import threading

import pytest

from conftest import ROUND_TRIP
from conftest import STEWARD_WEIGHER
from conftest import names
from conftest import warnings_of
from harness import nova_scheduler as ns
from steward_nova import client
from steward_nova import handoff


@pytest.fixture(autouse=True)
def fresh_handoff():
    handoff.clear()
    yield
    handoff.clear()


@pytest.fixture
def calls(monkeypatch):
    """Paths of every HTTP call the shim makes (client.post)."""
    made = []
    real = client.post

    def spy(path, data, req_id=None):
        made.append(path)
        return real(path, data, req_id)

    monkeypatch.setattr(client, 'post', spy)
    return made


def hosts_in_az(prefix, n, az='az1'):
    agg = ns.az_aggregate(az)
    return [ns.make_host_state('%s-%d' % (prefix, i), aggregates=[agg])
            for i in range(n)]


def weighed(result):
    return [(w.obj.host, w.weight) for w in result]


# Against a live steward ----------------------------------------------------

def test_one_call_gives_the_ordering_of_two(nova_conf, steward, calls,
                                            monkeypatch):
    """Nova's default pipeline plus both steward classes: ONE HTTP call,
    and the very hosts and final weights that a filter call plus a weigh
    call give for the same request."""
    agg = ns.az_aggregate('az1')
    hosts = [ns.make_host_state('rt-%d' % i, aggregates=[agg],
                                vcpus=32 + 16 * (i % 3),
                                free_ram_mb=50000 + 20000 * (i % 4),
                                instances=[ns.stable_uuid('rt', i)])
             for i in range(8)]
    steward.push_telemetry(hosts=[
        {'host': h.host, 'az': 'az1', 'steal': 0.02 * i, 'load5': 1.0 + i}
        for i, h in enumerate(hosts)])
    sched = nova_conf.scheduler(steward.url, steward.token_file())
    spec = ns.make_request_spec(hints={'steward_role': ['web'],
                                       'steward_profile': ['web']})

    one = sched.schedule(hosts, spec)
    assert calls == [ROUND_TRIP]

    # The same request the old way: the filter asks no weights, so the
    # weigher calls /v1/weigh.
    monkeypatch.setattr(handoff, 'wanted', lambda: False)
    del calls[:]
    two = sched.schedule(hosts, spec)
    assert calls == ['/v1/filter?compact=true', '/v1/weigh']

    assert len(one) == 8
    assert names(one) == names(two)
    assert [w for _, w in weighed(one)] == pytest.approx(
        [w for _, w in weighed(two)])
    # Steward had an opinion (steal differs): not all weights equal.
    assert len({round(w, 9) for _, w in weighed(one)}) > 1


def test_weigher_alone_makes_one_weigh_call(nova_conf, steward, calls):
    """StewardWeigher enabled, StewardFilter not (Nova's default filters
    only): one /v1/weigh call per request."""
    hosts = hosts_in_az('wonly', 4)
    sched = nova_conf.scheduler(
        steward.url, steward.token_file(),
        filters=list(ns.CONF.filter_scheduler.enabled_filters))
    assert 'StewardFilter' not in [type(f).__name__ for f in sched.filters]
    assert len(sched.schedule(hosts, ns.make_request_spec())) == 4
    assert calls == ['/v1/weigh']


# Against a scripted steward --------------------------------------------------

def per_request_weights(req):
    """A steward whose weights depend on the instance: the host whose
    index is the last hex digit of the uuid mod n weighs most. Lets a test
    see whose weights a weigher used."""
    hosts = req['hosts']
    best = int(req['instance']['uuid'][-1], 16) % len(hosts)
    weights = [{'host': h['host'], 'nodename': h['nodename'],
                'weight': 10.0 if i == best else float(i) / 100}
               for i, h in enumerate(hosts)]
    if req['_call'] == 'weigh':
        return 200, {'weights': weights}
    answer = {'allowed': [{'host': h['host'], 'nodename': h['nodename']}
                          for h in hosts], 'rejected': []}
    if req['_weigh']:
        answer['weights'] = weights
    return 200, answer


def spec_with_best(digit):
    """A RequestSpec whose uuid makes per_request_weights prefer host
    index `digit` (of up to 16 hosts)."""
    return ns.make_request_spec(
        instance_uuid='0a1b2c3d-0000-4000-8000-00000000000%x' % digit)


def test_interleaved_requests_never_use_each_others_weights(
        nova_conf, fault_server):
    srv = fault_server(per_request_weights)
    hosts = hosts_in_az('mix', 6)
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    a, b = spec_with_best(1), spec_with_best(4)
    passed_a = sched.filter(hosts, a)
    passed_b = sched.filter(hosts, b)
    # Weighed in the other order than they were filtered.
    weighed_b = sched.weigh(passed_b, b)
    weighed_a = sched.weigh(passed_a, a)
    assert weighed_a[0].obj.host == 'mix-1'
    assert weighed_b[0].obj.host == 'mix-4'
    assert [r['path'] for r in srv.requests] == [
        ROUND_TRIP, ROUND_TRIP]


def test_multi_create_instance_uuid_is_part_of_the_key(nova_conf,
                                                       fault_server):
    """Nova reuses one RequestSpec for every instance of a multi-create
    and changes instance_uuid: weights kept for one instance are not the
    next one's."""
    srv = fault_server(per_request_weights)
    hosts = hosts_in_az('multi', 6)
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    spec = spec_with_best(2)
    passed = sched.filter(hosts, spec)
    spec.instance_uuid = '0a1b2c3d-0000-4000-8000-000000000005'
    assert sched.weigh(passed, spec)[0].obj.host == 'multi-5'
    assert [r['path'] for r in srv.requests] == [
        ROUND_TRIP, '/v1/weigh']


def test_concurrent_requests_each_get_their_own_weights(nova_conf,
                                                        fault_server):
    srv = fault_server(per_request_weights)
    hosts = hosts_in_az('conc', 16)
    # A generous timeout: the scripted steward is Python, sharing the GIL
    # with 8 scheduling threads.
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER], timeout=10.0)
    results, errors = {}, []
    start = threading.Barrier(8)

    def run(digit):
        try:
            start.wait()
            for _ in range(10):
                spec = spec_with_best(digit)
                best = sched.schedule(hosts, spec)[0].obj.host
                results.setdefault(digit, set()).add(best)
        except Exception as e:  # pragma: no cover (reported below)
            errors.append(e)

    threads = [threading.Thread(target=run, args=(d,)) for d in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == {d: {'conc-%d' % d} for d in range(8)}
    # Every request made its one round trip, none fell back.
    assert {r['path'] for r in srv.requests} == {ROUND_TRIP}
    assert len(srv.requests) == 80


def test_hosts_filtered_down_after_steward_still_use_the_kept_weights(
        nova_conf, fault_server):
    """StewardFilter first, then Nova's ComputeFilter drops the hosts
    whose nova-compute is down: the weigher gets a subset of what steward
    weighed and uses the kept weights, one round trip in all."""
    srv = fault_server(per_request_weights)
    agg = ns.az_aggregate('az1')
    hosts = [ns.make_host_state('sub-%d' % i, aggregates=[agg],
                                service_up=i not in (1, 2))
             for i in range(6)]
    sched = nova_conf.scheduler(srv.url,
                                filters=['StewardFilter', 'ComputeFilter'],
                                weighers=[STEWARD_WEIGHER])
    result = sched.schedule(hosts, spec_with_best(3))
    assert names(result) == ['sub-3', 'sub-5', 'sub-4', 'sub-0']
    assert [r['path'] for r in srv.requests] == [ROUND_TRIP]
    # Nova normalised steward's raw weights of the four hosts left.
    assert [w.weight for w in result] == pytest.approx(
        [1.0, 0.05 / 10.0, 0.04 / 10.0, 0.0])


def test_hosts_the_filter_did_not_see_make_the_weigher_ask(nova_conf,
                                                           fault_server):
    srv = fault_server(per_request_weights)
    hosts = hosts_in_az('late', 4)
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    spec = spec_with_best(1)
    passed = sched.filter(hosts[:3], spec)
    weighed_hosts = sched.weigh(passed + hosts[3:], spec)
    assert len(weighed_hosts) == 4
    assert [r['path'] for r in srv.requests] == [
        ROUND_TRIP, '/v1/weigh']
    assert len(srv.requests[1]['body']['hosts']) == 4


def test_failed_filter_call_leaves_nothing_behind(nova_conf, fault_server,
                                                  shim_log):
    """The same request filtered twice: the first call's weights must not
    outlive a second call that failed (fail open as ever); the weigher
    then asks /v1/weigh, whose answer it uses."""
    state = {'filter_calls': 0}

    def second_filter_fails(req):
        if req['_call'] == 'filter':
            state['filter_calls'] += 1
            if state['filter_calls'] == 2:
                return 500, {'error': {'code': 'steward.internal',
                                       'message': 'boom'}}
            return per_request_weights(req)
        # /v1/weigh: the first host best, unlike the filter's weights.
        return 200, {'weights': [
            {'host': h['host'], 'nodename': h['nodename'],
             'weight': 1.0 if i == 0 else 0.0}
            for i, h in enumerate(req['hosts'])]}

    srv = fault_server(second_filter_fails)
    hosts = hosts_in_az('failed', 4)
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    spec = spec_with_best(2)
    assert len(sched.filter(hosts, spec)) == 4
    passed = sched.filter(hosts, spec)  # fails open: all 4 hosts
    assert names(passed) == names(hosts)
    assert sched.weigh(passed, spec)[0].obj.host == 'failed-0'
    assert [r['path'] for r in srv.requests] == [
        ROUND_TRIP, ROUND_TRIP, '/v1/weigh']
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1 and 'HTTP 500' in warned[0]


def test_bad_weights_keep_the_filter_answer_and_the_weigher_asks(
        nova_conf, fault_server, shim_log):
    """Weights that break the contract are not kept, and warned about;
    the filter's own answer is still good, so it still filters."""

    def bad_weights(req):
        hosts = req['hosts']
        if req['_call'] == 'weigh':
            return per_request_weights(req)
        return 200, {
            'allowed': [{'host': h['host'], 'nodename': h['nodename']}
                        for h in hosts[1:]],
            'rejected': [{'host': hosts[0]['host'],
                          'nodename': hosts[0]['nodename'],
                          'plugin': 'same_az', 'reason': 'elsewhere'}],
            # Weighs the rejected host, not the last allowed one.
            'weights': [{'host': h['host'], 'nodename': h['nodename'],
                         'weight': 1.0} for h in hosts[:-1]]}

    srv = fault_server(bad_weights)
    hosts = hosts_in_az('badw', 4)
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    # /v1/weigh gets the 3 allowed hosts; index 2 of them weighs most.
    result = sched.schedule(hosts, spec_with_best(2))
    assert sorted(names(result)) == ['badw-1', 'badw-2', 'badw-3']
    assert result[0].obj.host == 'badw-3'
    assert [r['path'] for r in srv.requests] == [
        ROUND_TRIP, '/v1/weigh']
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1, warned
    assert 'weights:' in warned[0] and 'asks /v1/weigh' in warned[0]


def test_weights_in_another_order_are_matched_by_host(nova_conf,
                                                      fault_server):
    def reversed_weights(req):
        status, answer = per_request_weights(req)
        if 'weights' in answer:
            answer['weights'] = answer['weights'][::-1]
        return status, answer

    srv = fault_server(reversed_weights)
    hosts = hosts_in_az('rev', 5)
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    assert sched.schedule(hosts, spec_with_best(3))[0].obj.host == 'rev-3'
    assert len(srv.requests) == 1


def test_rebuild_keeps_nothing_and_the_weigher_asks(nova_conf,
                                                    fault_server):
    srv = fault_server('ok')
    hosts = hosts_in_az('rbw', 3)
    sched = nova_conf.scheduler(srv.url, filters=['StewardFilter'],
                                weighers=[STEWARD_WEIGHER])
    spec = ns.make_request_spec(hints={'_nova_check_type': ['rebuild']})
    assert len(sched.schedule(hosts, spec)) == 3
    assert [r['path'] for r in srv.requests] == ['/v1/weigh']


# The hand-off itself ---------------------------------------------------------

class Spec:
    def __init__(self, instance_uuid):
        self.instance_uuid = instance_uuid


class Host:
    def __init__(self, host, nodename=None):
        self.host, self.nodename = host, nodename


H1, H2 = Host('h1'), Host('h2', 'n2')
KEYS = [('h1', 'h1'), ('h2', 'n2')]


def test_a_recycled_id_never_matches(monkeypatch):
    """Two RequestSpecs with the same key (as when CPython reuses the id
    of a freed object for a request of the same instance): the weak
    reference tells them apart."""
    monkeypatch.setattr(handoff, '_key', lambda spec: ('same', 'key'))
    first, second = Spec('u'), Spec('u')
    handoff.put(first, [H1], KEYS[:1], [1.0])
    assert handoff.take(second, [H1]) is None
    handoff.put(first, [H1], KEYS[:1], [1.0])
    del first
    assert handoff.take(second, [H1]) is None


def test_kept_weights_match_hosts_by_identity_then_host_and_node():
    spec = Spec('u-0')
    handoff.put(spec, [H1, H2], KEYS, [1.0, 2.0])
    assert handoff.take(spec, [H1, H2]) == [1.0, 2.0]
    # Another HostState object for the same (host, nodename); a subset.
    handoff.put(spec, [H1, H2], KEYS, [1.0, 2.0])
    assert handoff.take(spec, [Host('h2', 'n2')]) == [2.0]
    # A host the filter did not weigh: nothing.
    handoff.put(spec, [H1, H2], KEYS, [1.0, 2.0])
    assert handoff.take(spec, [H1, Host('h2', 'other')]) is None


def test_kept_weights_expire_are_taken_once_and_are_bounded():
    now = [1000.0]
    spec = Spec('u-1')
    handoff.put(spec, [H1], KEYS[:1], [2.0], clock=lambda: now[0])
    now[0] += handoff.TTL + 0.1
    assert handoff.take(spec, [H1], clock=lambda: now[0]) is None

    handoff.put(spec, [H1], KEYS[:1], [2.0], clock=lambda: now[0])
    assert handoff.take(spec, [H1], clock=lambda: now[0]) == [2.0]
    assert handoff.take(spec, [H1], clock=lambda: now[0]) is None

    specs = [Spec('u-%d' % i) for i in range(handoff.MAX_ENTRIES + 10)]
    for s in specs:
        handoff.put(s, [H1], KEYS[:1], [1.0])
    assert len(handoff._entries) == handoff.MAX_ENTRIES
    # The oldest went first; the newest are still there.
    assert handoff.take(specs[0], [H1]) is None
    assert handoff.take(specs[-1], [H1]) == [1.0]
