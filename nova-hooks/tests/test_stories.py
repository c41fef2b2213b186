"""Stories a, b and c against a live steward, through Nova's real
scheduler handlers configured as etc/nova.conf.steward-snippet does."""

import pytest

from conftest import names
from conftest import warnings_of
from harness import nova_scheduler as ns
from steward_nova import body


def az_hosts(prefix, layout, instances=None):
    """Hosts per AZ: layout = {'az1': ['a1', 'a2'], None: ['x1']}; None
    means the host is in no AZ aggregate."""
    instances = instances or {}
    aggs = {az: ns.az_aggregate(az) for az in layout if az}
    hosts = []
    for az, short_names in layout.items():
        for short in short_names:
            host = '%s-%s' % (prefix, short)
            hosts.append(ns.make_host_state(
                host, aggregates=[aggs[az]] if az else [],
                instances=instances.get(short, ())))
    return hosts


def steward_answer(steward, path, hosts, spec):
    """Steward's own answer to the body the shim builds for this request
    (what the shim sent, minus hosts Nova stripped before the filters)."""
    ignored = set(spec.ignore_hosts or ())
    sent = [h for h in hosts if h.host not in ignored]
    status, answer, _ = steward.post(path, body.build(sent, spec))
    assert status == 200, answer
    return answer


# Story a ------------------------------------------------------------------

LM_LAYOUT = {'az1': ['src', 'a1', 'a2'], 'az2': ['b1'], 'az3': ['c1'],
             None: ['x1']}


@pytest.mark.parametrize('label', [None, 'live_migrate'],
                         ids=['unlabelled-move', 'fork-labelled'])
def test_a_live_migration_stays_in_source_az(nova_conf, steward, label):
    """The instance was booted without a named AZ, so Nova itself would
    let it cross AZs. Steward learned the source host's AZ from telemetry
    (the source is not among the candidates: Nova strips ignore_hosts)
    and keeps the move in az1; the host with no AZ is not "anywhere"."""
    prefix = 'lm-%s' % (label or 'move')
    hosts = az_hosts(prefix, LM_LAYOUT)
    steward.push_telemetry(hosts=[{'host': prefix + '-src', 'az': 'az1',
                                   'steal': 0.01}])
    sched = nova_conf.scheduler(steward.url, steward.token_file())
    hints = {'_nova_check_type': [label]} if label else None
    spec = ns.make_request_spec(ignore_hosts=[prefix + '-src'], hints=hints)
    assert spec.availability_zone is None

    passed = sched.filter(hosts, spec)
    assert names(passed) == [prefix + '-a1', prefix + '-a2']
    weighed = sched.weigh(passed, spec)
    assert sorted(names(weighed)) == [prefix + '-a1', prefix + '-a2']

    answer = steward_answer(steward, '/v1/filter', hosts, spec)
    rejected = {r['host']: r for r in answer['rejected']}
    assert set(rejected) == {prefix + '-b1', prefix + '-c1', prefix + '-x1'}
    assert {r['plugin'] for r in rejected.values()} == {'same_az'}
    assert all(r['reason'] for r in rejected.values())


def test_a_boot_without_az_may_use_every_az(nova_conf, steward):
    """Control for story a: the same hosts for a new server with no
    requested AZ are all allowed; the restriction comes from the move."""
    hosts = az_hosts('lmboot', LM_LAYOUT)
    sched = nova_conf.scheduler(steward.url, steward.token_file())
    assert names(sched.filter(hosts, ns.make_request_spec())) == names(hosts)


# Story b ------------------------------------------------------------------

@pytest.mark.parametrize('multiplier', [1.0, 2.5])
def test_b_high_steal_host_ranks_below_quiet_one(nova_conf, steward,
                                                 multiplier):
    prefix = 'steal-%s' % multiplier
    quiet, noisy = prefix + '-quiet', prefix + '-noisy'
    agg = ns.az_aggregate('az1')
    # Noisy first, so a pass cannot come from the input order.
    hosts = [ns.make_host_state(noisy, aggregates=[agg]),
             ns.make_host_state(quiet, aggregates=[agg])]
    steward.push_telemetry(hosts=[
        {'host': quiet, 'az': 'az1', 'steal': 0.01},
        {'host': noisy, 'az': 'az1', 'steal': 0.20}])
    sched = nova_conf.scheduler(steward.url, steward.token_file(),
                                weight_multiplier=multiplier)
    spec = ns.make_request_spec()

    weighed = sched.schedule(hosts, spec)
    assert names(weighed) == [quiet, noisy]
    # Nova's 13 own weighers cannot tell the two hosts apart; after the
    # handler's min-max normalisation steward's part is exactly
    # multiplier * (1 - 0).
    assert weighed[0].weight - weighed[1].weight == pytest.approx(multiplier)

    answer = steward_answer(steward, '/v1/weigh', hosts, spec)
    raw = {w['host']: w['weight'] for w in answer['weights']}
    assert raw[quiet] > raw[noisy]
    assert answer['degraded'] is False, answer['degraded_reasons']


# Story c ------------------------------------------------------------------

def test_c_server_group_member_already_on_host_excludes_it(
        nova_conf, steward, shim_log):
    """Role = the server group's name; steward counts its members in each
    host's instance uuids. Policy soft-anti-affinity, so Nova's own
    filters let every host through: the exclusion is steward's."""
    member, other = ns.stable_uuid('rs-member'), ns.stable_uuid('rs-other')
    hosts = az_hosts('rsg', {'az1': ['a1', 'a2', 'a3']},
                     instances={'a1': [member], 'a2': [other]})
    group = ns.make_server_group('web-tier', policy='soft-anti-affinity',
                                 members=[member])
    flavor = ns.make_flavor('m1.web', extra_specs={'steward:profile': 'web'})
    sched = nova_conf.scheduler(steward.url, steward.token_file())
    spec = ns.make_request_spec(flavor=flavor, instance_group=group)

    assert names(sched.filter(hosts, spec)) == ['rsg-a2', 'rsg-a3']

    answer = steward_answer(steward, '/v1/filter', hosts, spec)
    assert answer['profile'] == 'web' and answer['role'] == 'web-tier'
    assert [(r['host'], r['plugin']) for r in answer['rejected']] == [
        ('rsg-a1', 'role_spread')]
    reason = answer['rejected'][0]['reason']
    assert reason
    debug = [r.getMessage() for r in shim_log.records]
    assert any('rejected host rsg-a1' in m and 'role_spread' in m
               and reason in m for m in debug), debug


def test_c_role_hint_counts_vms_steward_knows_by_role(nova_conf, steward,
                                                      shim_log):
    """Role from the hint steward_role; steward knows the roles of the
    VMs on each host from telemetry pushes."""
    web_vm, db_vm = ns.stable_uuid('rh-web'), ns.stable_uuid('rh-db')
    hosts = az_hosts('rsh', {'az1': ['b1', 'b2', 'b3']},
                     instances={'b1': [web_vm], 'b2': [db_vm]})
    steward.push_telemetry(vms=[
        {'uuid': web_vm, 'host': 'rsh-b1', 'role': 'web', 'steal': 0.0},
        {'uuid': db_vm, 'host': 'rsh-b2', 'role': 'db', 'steal': 0.0}])
    sched = nova_conf.scheduler(steward.url, steward.token_file())
    spec = ns.make_request_spec(hints={'steward_role': ['web'],
                                       'steward_profile': ['web']})

    assert names(sched.filter(hosts, spec)) == ['rsh-b2', 'rsh-b3']
    answer = steward_answer(steward, '/v1/filter', hosts, spec)
    assert answer['role'] == 'web'
    assert [(r['host'], r['plugin']) for r in answer['rejected']] == [
        ('rsh-b1', 'role_spread')]
    assert warnings_of(shim_log) == []


# Auth, as nova-scheduler meets it -----------------------------------------

def test_wrong_token_fails_open_with_steward_error_code(nova_conf, steward,
                                                        shim_log, tmp_path):
    bad = tmp_path / 'bad.token'
    bad.write_text('not-a-steward-token\n')
    hosts = az_hosts('auth', {'az1': ['a1', 'a2']})
    sched = nova_conf.scheduler(steward.url, str(bad))
    assert names(sched.filter(hosts, ns.make_request_spec())) == names(hosts)
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1
    assert 'HTTP 401 steward.unauthorized' in warned[0], warned


def test_request_id_reaches_steward_and_is_echoed(steward):
    hosts = az_hosts('reqid', {'az1': ['a1']})
    spec = ns.make_request_spec(
        request_id='req-0e0c4a8e-6c35-4b43-9a43-3f1f5b7f9a10')
    status, answer, headers = steward.post(
        '/v1/filter', body.build(hosts, spec),
        headers={'X-OpenStack-Request-ID': spec._context.request_id})
    assert status == 200, answer
    assert answer['request_id'] == spec._context.request_id
    assert headers['X-OpenStack-Request-ID'] == spec._context.request_id
