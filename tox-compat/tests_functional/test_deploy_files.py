"""The operator files of etc/ against the real tools they are written for.

- etc/prometheus/alerts.yaml passes Debian's `promtool check rules`, and
  `promtool test rules` shows each alert firing on the condition it names
  and staying quiet on a healthy steward beside it.
- etc/keystone/register-steward.sh, run twice with the real `openstack`
  CLI against the real Keystone 30, registers service type
  `scheduler-steward` once with its three endpoints and a service user
  whose token carries steward_reader (and the reader it implies) and no
  admin; the opt-in repair user is a separate admin.
- etc/keystone/{nova,placement}-policy.steward.yaml, loaded by the real
  Nova API 34 and Placement 16, let steward_reader make every read
  steward's cluster view makes, which plain `reader` may not, and no
  write.

(tests/deploy_files.rs checks the same files against steward itself.)
"""

import json
import os
import subprocess

import yaml

from harness.keystone import start_keystone
from harness.nova_api import start_nova_api
from harness.placement import start_placement
from harness.prometheus import ensure_installed
from harness.venvs import peer_bin
from harness.venvs import peer_env

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
ALERTS = os.path.join(ROOT, 'etc', 'prometheus', 'alerts.yaml')
REGISTER = os.path.join(ROOT, 'etc', 'keystone', 'register-steward.sh')
NOVA_POLICY = os.path.join(ROOT, 'etc', 'keystone', 'nova-policy.steward.yaml')
PLACEMENT_POLICY = os.path.join(ROOT, 'etc', 'keystone',
                                'placement-policy.steward.yaml')


def promtool(*args, cwd=None):
    _, tool, _ = ensure_installed()
    return subprocess.run([tool] + list(args), capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def test_alert_rules_pass_promtool_check():
    done = promtool('check', 'rules', ALERTS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert 'SUCCESS' in done.stdout, done.stdout


def _series(name, labels, values):
    inner = ','.join('%s="%s"' % kv for kv in sorted(labels.items()))
    return {'series': '%s{%s}' % (name, inner), 'values': values}


def _alert(name, at, *labels):
    return {'eval_time': at, 'alertname': name,
            'exp_alerts': [{'exp_labels': dict(lab)} for lab in labels]}


S1 = {'job': 'steward', 'instance': 'steward-1:8790'}
S2 = {'job': 'steward', 'instance': 'steward-2:8790'}


def _rule_tests():
    """Each alert on a failing instance (S1) beside a healthy one (S2)."""
    callout = {'route': '/v1/filter', 'method': 'POST', 'status': '200'}
    return [
        {'name': 'down', 'interval': '1m', 'input_series': [
            _series('up', S1, '1 1 0 0 0 0 0'),
            _series('up', S2, '1 1 1 1 1 1 1')],
         'alert_rule_test': [
            _alert('StewardDown', '1m'),
            _alert('StewardDown', '6m', dict(S1, severity='critical'))]},
        {'name': 'no steward target at all', 'interval': '1m',
         'input_series': [_series('up', {'job': 'node'}, '1x5')],
         'alert_rule_test': [
            _alert('StewardDown', '4m',
                   {'job': 'steward', 'severity': 'critical'})]},
        {'name': 'degraded answers', 'interval': '1m', 'input_series': [
            # 1 request/s on each; half of S1's answers degraded, 5 % of S2's.
            _series('steward_http_requests_total', dict(S1, **callout),
                    '0+60x40'),
            _series('steward_scoring_degraded_total',
                    dict(S1, route='/v1/filter'), '0+30x40'),
            _series('steward_http_requests_total', dict(S2, **callout),
                    '0+60x40'),
            _series('steward_scoring_degraded_total',
                    dict(S2, route='/v1/filter'), '0+3x40')],
         'alert_rule_test': [
            _alert('StewardAnswersDegraded', '12m'),
            _alert('StewardAnswersDegraded', '30m',
                   {'instance': S1['instance'], 'severity': 'warning'})]},
        {'name': 'stale telemetry and cluster view', 'interval': '1m',
         'input_series': [
            # S1's last good poll and refresh were at t=0; S2's follow time.
            _series('steward_source_last_success_timestamp_seconds',
                    dict(S1, source='prometheus', task='poll'), '0x40'),
            _series('steward_source_last_success_timestamp_seconds',
                    dict(S2, source='prometheus', task='poll'), '0+60x40'),
            _series('steward_source_last_success_timestamp_seconds',
                    dict(S1, source='nova', task='refresh'), '0x40'),
            _series('steward_source_last_success_timestamp_seconds',
                    dict(S2, source='nova', task='refresh'), '0+60x40')],
         'alert_rule_test': [
            _alert('StewardTelemetryStale', '9m'),
            _alert('StewardTelemetryStale', '20m', dict(
                S1, source='prometheus', task='poll', severity='warning')),
            _alert('StewardClusterViewStale', '14m'),
            _alert('StewardClusterViewStale', '25m', dict(
                S1, source='nova', task='refresh', severity='warning'))]},
        {'name': 'source errors', 'interval': '1m', 'input_series': [
            _series('steward_source_errors_total',
                    dict(S1, source='prometheus', kind='timeout'),
                    '0+1x20'),
            _series('steward_source_errors_total',
                    dict(S2, source='prometheus', kind='timeout'),
                    '0x20')],
         'alert_rule_test': [
            _alert('StewardSourceErrors', '16m', {
                'instance': S1['instance'], 'source': 'prometheus',
                'kind': 'timeout', 'severity': 'info'})]},
        {'name': 'Nova policy refuses a read', 'interval': '1m',
         'input_series': [
            _series('steward_source_forbidden', dict(
                S1, source='nova',
                policy='os_compute_api:os-hypervisors:list-detail'),
                '1x10'),
            _series('steward_source_forbidden', dict(
                S2, source='nova',
                policy='os_compute_api:os-hypervisors:list-detail'),
                '1 1 0 0 0 0 0 0 0 0 0')],
         'alert_rule_test': [
            _alert('StewardNovaPolicyForbids', '4m'),
            _alert('StewardNovaPolicyForbids', '7m', {
                'instance': S1['instance'], 'source': 'nova',
                'policy': 'os_compute_api:os-hypervisors:list-detail',
                'severity': 'warning'})]},
        {'name': 'failed migrations and repair runs', 'interval': '1m',
         'input_series': [
            _series('steward_rebalance_actions_total',
                    dict(S1, state='failed'), '0 0 0 1 1 1 1'),
            _series('steward_rebalance_actions_total',
                    dict(S2, state='done'), '0 1 2 3 4 5 6'),
            _series('steward_repair_runs_total',
                    dict(S1, result='failed'), '0 0 0 1 1 1 1'),
            _series('steward_repair_runs_total',
                    dict(S2, result='succeeded'), '0 1 1 1 1 1 1')],
         'alert_rule_test': [
            _alert('StewardMigrationsFailing', '2m'),
            _alert('StewardMigrationsFailing', '5m',
                   {'instance': S1['instance'], 'severity': 'warning'}),
            _alert('StewardRepairRunFailed', '2m'),
            _alert('StewardRepairRunFailed', '5m',
                   {'instance': S1['instance'], 'severity': 'critical'})]},
        {'name': 'recovery: a failed fencing, a held guard, a blocked VM',
         'interval': '1m', 'input_series': [
            _series('steward_recovery_fence_failures_total',
                    dict(S1, host='cmp-3'), '0 0 0 1 1 1 1'),
            _series('steward_recovery_fence_failures_total',
                    dict(S2, host='cmp-4'), '0 0 0 0 0 0 0'),
            _series('steward_recovery_guard', dict(S1, scope='az1'),
                    '0 0 1 1 1 1 1'),
            _series('steward_recovery_guard', dict(S2, scope='az1'),
                    '0 0 0 0 0 0 0'),
            _series('steward_recovery_evacuations_total',
                    dict(S1, outcome='blocked'), '0 0 0 1 1 1 1'),
            _series('steward_recovery_evacuations_total',
                    dict(S2, outcome='done'), '0 1 2 3 4 5 6')],
         'alert_rule_test': [
            _alert('StewardFencingFailed', '2m'),
            _alert('StewardFencingFailed', '4m', {
                'instance': S1['instance'], 'host': 'cmp-3',
                'severity': 'critical'}),
            _alert('StewardRecoveryGuardHolds', '2m'),
            _alert('StewardRecoveryGuardHolds', '4m', {
                'instance': S1['instance'], 'scope': 'az1',
                'severity': 'critical'}),
            _alert('StewardEvacuationsFailing', '2m'),
            _alert('StewardEvacuationsFailing', '4m', {
                'instance': S1['instance'], 'severity': 'warning'})]},
    ]


def test_each_alert_fires_on_its_condition_and_not_on_a_healthy_steward(
        tmp_path):
    with open(ALERTS, encoding='utf-8') as f:
        rules = yaml.safe_load(f)
    names = {r['alert'] for g in rules['groups'] for r in g['rules']}
    # promtool compares annotations too; `check rules` above validated
    # their templates, so the copy under test keeps expr, for and labels.
    for g in rules['groups']:
        for r in g['rules']:
            r.pop('annotations', None)
    (tmp_path / 'alerts.yaml').write_text(json.dumps(rules))
    tests = _rule_tests()
    tested = {t['alertname'] for case in tests
              for t in case['alert_rule_test']}
    assert tested == names, 'alerts without a promtool test: %s' % (
        names - tested)
    (tmp_path / 'alerts_test.yaml').write_text(json.dumps({
        'rule_files': ['alerts.yaml'], 'evaluation_interval': '1m',
        'tests': tests}))
    done = promtool('test', 'rules', 'alerts_test.yaml', cwd=str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


# -- Keystone registration -------------------------------------------------


def _run_register(ks, tmp_path, clouds):
    env = peer_env('osc', None, {
        'OS_CLIENT_CONFIG_FILE': clouds,
        'OS_CLOUD': 'admin',
        'OPENSTACK': peer_bin('osc', 'openstack'),
        'STEWARD_PUBLIC_URL': 'http://127.0.0.1:8790',
        'STEWARD_INTERNAL_URL': 'http://steward.internal:8790',
        'STEWARD_PASSWORD_FILE': str(tmp_path / 'steward-password'),
        'STEWARD_MIGRATOR': '1',
        'STEWARD_VALIDATE_TOKENS': '1',
        'STEWARD_REPAIR_USER': '1',
        'STEWARD_REPAIR_PASSWORD_FILE': str(tmp_path / 'repair-password'),
    })
    for key in [k for k in env if k.startswith('OS_') and k not in (
            'OS_CLIENT_CONFIG_FILE', 'OS_CLOUD',
            'OS_NOVA_DISABLE_EVENTLET_PATCHING')]:
        del env[key]
    done = subprocess.run(['sh', REGISTER], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, (
        'register-steward.sh failed (exit %d):\n%s\n%s' % (
            done.returncode, done.stdout[-3000:], done.stderr[-3000:]))
    assert 'Password1-for-steward' not in done.stdout + done.stderr
    return done


def test_keystone_registration_is_least_privilege_and_idempotent(tmp_path):
    (tmp_path / 'steward-password').write_text('Password1-for-steward\n')
    (tmp_path / 'repair-password').write_text('Password2-for-repair\n')
    with start_keystone(str(tmp_path / 'keystone')) as ks:
        clouds = ks.write_clouds_yaml({'admin': {
            'auth': {'auth_url': ks.auth_url, 'username': 'admin',
                     'password': ks.admin_password, 'project_name': 'admin',
                     'user_domain_name': 'Default',
                     'project_domain_name': 'Default'},
            'region_name': 'RegionOne', 'identity_api_version': 3}})
        _run_register(ks, tmp_path, clouds)
        _run_register(ks, tmp_path, clouds)   # safe to run again

        services = ks.api('GET', '/services?type=scheduler-steward')
        assert len(services['services']) == 1, services
        sid = services['services'][0]['id']
        endpoints = ks.api('GET', '/endpoints?service_id=%s' % sid)
        got = sorted((e['interface'], e['url'], e['region_id'])
                     for e in endpoints['endpoints'])
        assert got == [
            ('admin', 'http://steward.internal:8790', 'RegionOne'),
            ('internal', 'http://steward.internal:8790', 'RegionOne'),
            ('public', 'http://127.0.0.1:8790', 'RegionOne')], got

        # The service user's password came from its file; its token
        # carries steward's roles (reader implied) and never admin.
        _, token = ks.login('steward', 'Password1-for-steward',
                            project='service')
        roles = sorted(r['name'] for r in token['roles'])
        assert roles == ['reader', 'service', 'steward_migrator',
                         'steward_reader'], roles
        catalog = {s['type']: s for s in token['catalog']}
        public = [e['url'] for e in
                  catalog['scheduler-steward']['endpoints']
                  if e['interface'] == 'public']
        assert public == ['http://127.0.0.1:8790'], catalog

        # The repair user is separate and is the only one with admin.
        _, repair = ks.login('steward-repair', 'Password2-for-repair',
                             project='service')
        assert 'admin' in {r['name'] for r in repair['roles']}


# -- policy overrides ------------------------------------------------------

STEWARD = ('steward_reader', 'reader')   # as Keystone expands the role
PROJECT = 'c0c0c0c0c0c04c0c8c0c0c0c0c0c0c0c'
USER = 'd0d0d0d0d0d04d0d8d0d0d0d0d0d0d0d'
OTHER_PROJECT = 'e0e0e0e0e0e04e0e8e0e0e0e0e0e0e0e'


def _with_policy(workdir, source):
    """A peer workdir holding `source` as policy.yaml, where oslo.policy
    looks for it (the directory of the service's config file)."""
    os.makedirs(workdir, exist_ok=True)
    with open(source, encoding='utf-8') as f:
        text = f.read()
    with open(os.path.join(workdir, 'policy.yaml'), 'w',
              encoding='utf-8') as f:
        f.write(text)
    return workdir


def test_policy_overrides_let_steward_reader_read_and_not_write(tmp_path):
    # The reads of steward's Nova refresh (src/openstack/nova.rs) and
    # Placement client (src/openstack/placement.rs).
    nova_reads = ['/os-hypervisors/detail', '/servers/detail?all_tenants=1',
                  '/os-aggregates', '/os-availability-zone/detail']
    placement_reads = ['/resource_providers']
    placement = start_placement(
        _with_policy(str(tmp_path / 'placement'), PLACEMENT_POLICY),
        backend='sqlite')
    try:
        rp = placement.create_provider('cmp-1')
        placement.set_inventory(rp, {'VCPU': {'total': 64}})
        placement_reads += ['/resource_providers/%s/inventories' % rp,
                            '/resource_providers/%s/usages' % rp,
                            '/resource_providers/%s/aggregates' % rp,
                            '/resource_providers/%s/allocations' % rp]
        nova = start_nova_api(
            _with_policy(str(tmp_path / 'nova'), NOVA_POLICY),
            placement=placement)
        try:
            who = {'project_id': PROJECT, 'user_id': USER}
            for path in nova_reads:
                mv = '2.87' if path.startswith('/os-hyp') else '2.104'
                got = nova.request('GET', path, microversion=mv,
                                   roles=STEWARD, **who)
                assert got.status == 200, ('steward_reader GET %s: %s %r'
                                           % (path, got.status, got.body))
                plain = nova.request('GET', path, microversion=mv,
                                     roles=('reader',), **who)
                assert plain.status == 403, ('plain reader GET %s: %s'
                                             % (path, plain.status))
            # Nova 34 honours all_projects on server groups for
            # context.is_admin only (a check in code, not in policy), and
            # silently lists the caller's own groups otherwise: steward's
            # roles from other projects' server groups need admin. Pinned
            # here, so a Nova that lifts it shows up.
            nova.call('POST', '/os-server-groups', {'server_group': {
                'name': 'web-of-another-project',
                'policy': 'anti-affinity'}},
                roles=('member', 'reader'), project_id=OTHER_PROJECT,
                user_id=USER)
            seen = {}
            for roles in (STEWARD, ('reader',), ('admin', 'reader')):
                groups = nova.call('GET', '/os-server-groups?all_projects='
                                   'true', roles=roles, **who)
                seen[roles] = [g['name'] for g in groups['server_groups']]
            assert seen == {STEWARD: [], ('reader',): [],
                            ('admin', 'reader'): ['web-of-another-project']
                            }, seen
            # The rebalancer's opt-in role reads migrations; neither
            # steward_reader nor plain reader may.
            for roles, want in ((('steward_migrator', 'reader'), 200),
                                (STEWARD, 403), (('reader',), 403)):
                got = nova.request('GET', '/os-migrations', roles=roles,
                                   **who)
                assert got.status == want, ('%s GET /os-migrations: %s'
                                            % (roles, got.status))
            write = nova.request('POST', '/os-aggregates', {
                'aggregate': {'name': 'x', 'availability_zone': 'az9'}},
                roles=STEWARD, **who)
            assert write.status == 403, (write.status, write.body)
        finally:
            nova.stop()

        as_steward = {'X-Auth-Token': '%s:%s' % (USER, PROJECT),
                      'X-Roles': ','.join(STEWARD)}
        as_reader = dict(as_steward, **{'X-Roles': 'reader'})
        for path in placement_reads:
            got = placement.request('GET', path, headers=as_steward)
            assert got.status == 200, ('steward_reader GET %s: %s %r'
                                       % (path, got.status, got.body))
            plain = placement.request('GET', path, headers=as_reader)
            assert plain.status == 403, ('plain reader GET %s: %s'
                                         % (path, plain.status))
        for method, path, body in [
                ('PUT', '/resource_classes/CUSTOM_GOLD', None),
                ('DELETE', '/resource_providers/%s/inventories' % rp, None),
                ('POST', '/resource_providers', {'name': 'cmp-2'})]:
            got = placement.request(method, path, body, headers=as_steward)
            assert got.status == 403, ('steward_reader %s %s: %s'
                                       % (method, path, got.status))
    finally:
        placement.stop()
