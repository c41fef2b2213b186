"""`openstack steward cross az grant|list|revoke`: what each command sends
and the rows it makes of steward's answers, with a scripted client."""

from osc_lib import exceptions
import pytest
from test_osc_repair_rebalance import FakeApp
from test_osc_repair_rebalance import calls
from test_osc_repair_rebalance import run

from steward_nova.osc import cross_az

VM = '0b6d3c1e-5a7f-4f0e-9d61-2f4f8d0c7a01'
GRANT = {'id': 'g-1', 'vm': VM, 'to_az': 'az1', 'state': 'open',
         'granted_by': 'admin (request req-1)', 'reason': 'rack move',
         'created_at': 1.0, 'expires_at': 901.0, 'used_at': None,
         'revoked_at': None}


def test_grant_by_id_posts_the_az_reason_and_ttl():
    app, (names, values) = run(
        cross_az.GrantCrossAz,
        [VM, '--to-az', 'az1', '--reason', 'rack move', '--ttl', '600'],
        {('POST', '/v1/vms/%s/cross-az' % VM): GRANT})
    assert calls(app) == [('POST', '/v1/vms/%s/cross-az' % VM, None, {
        'to_az': 'az1', 'reason': 'rack move', 'ttl_seconds': 600.0})]
    assert dict(zip(names, values, strict=True))['state'] == 'open'


def _run_with_servers(servers, argv):
    app = FakeApp({('POST', '/v1/vms/%s/cross-az' % VM): GRANT})
    asked = []

    def compute_get(path, params=None):
        asked.append((path, params))
        return {'servers': servers}
    app.client_manager.steward.compute_get = compute_get
    cmd = cross_az.GrantCrossAz(app, None)
    parsed = cmd.get_parser('openstack steward').parse_args(argv)
    return app, asked, (lambda: cmd.take_action(parsed))


def test_grant_by_name_finds_the_one_server_of_that_exact_name():
    app, asked, go = _run_with_servers(
        [{'id': VM, 'name': 'web-1'}],
        ['web-1', '--to-az', 'az1', '--reason', 'x'])
    go()
    assert asked == [('/servers', {'name': '^web-1$', 'all_tenants': 1})]
    assert calls(app)[0][1] == '/v1/vms/%s/cross-az' % VM


def test_grant_by_an_ambiguous_name_is_refused_before_any_write():
    app, _, go = _run_with_servers(
        [{'id': VM, 'name': 'web'}, {'id': 'x', 'name': 'web'}],
        ['web', '--to-az', 'az1', '--reason', 'x'])
    with pytest.raises(exceptions.CommandError, match="2 servers are named"):
        go()
    assert calls(app) == []


def test_list_and_revoke():
    used = dict(GRANT, id='g/2', state='used', used_at=5.0)
    app, (columns, rows) = run(
        cross_az.ListCrossAz, ['--limit', '3'],
        {('GET', '/v1/cross-az-grants'): {'grants': [used]}})
    assert calls(app) == [('GET', '/v1/cross-az-grants', {'limit': 3}, None)]
    assert columns[0] == 'ID'
    assert rows == [('g/2', VM, 'az1', 'used', 'admin (request req-1)',
                     'rack move')]
    app, (names, values) = run(
        cross_az.RevokeCrossAz, ['g/2'],
        {('POST', '/v1/cross-az-grants/g%2F2/revoke'):
         dict(GRANT, state='revoked')})
    assert calls(app) == [
        ('POST', '/v1/cross-az-grants/g%2F2/revoke', None, None)]
    assert dict(zip(names, values, strict=True))['state'] == 'revoked'
