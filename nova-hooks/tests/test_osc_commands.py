"""`openstack steward ...` commands' argument parsing and what each sends,
with a recording client in place of the keystoneauth one (the real CLI
against a real steward and Keystone is tox-compat/tests_functional/
test_cli.py). Also the plugin module's interface for python-openstackclient."""

import argparse
import io

from osc_lib import exceptions
import pytest

from steward_nova.osc import hosts
from steward_nova.osc import plugin
from steward_nova.osc import profiles
from steward_nova.osc import score

KNOWN_HOSTS = {'hosts': [
    {'host': 'cmp-a1', 'az': 'az1', 'vcpus': 64.0},
    {'host': 'cmp-b1', 'az': 'az2', 'vcpus': None}]}
FLAVORS = {'flavors': [
    {'id': '1', 'name': 'm1.small', 'vcpus': 1, 'ram': 2048, 'disk': 20,
     'swap': '', 'OS-FLV-EXT-DATA:ephemeral': 0, 'extra_specs': {}},
    {'id': '2', 'name': 'm1.web', 'vcpus': 2, 'ram': 4096, 'disk': 20,
     'swap': '', 'OS-FLV-EXT-DATA:ephemeral': 0,
     'extra_specs': {'steward:profile': 'web'}},
    {'id': '3', 'name': 'twin', 'vcpus': 1, 'ram': 1, 'disk': 1},
    {'id': '4', 'name': 'twin', 'vcpus': 1, 'ram': 1, 'disk': 1}]}


class RecordingClient:
    def __init__(self):
        self.calls = []

    def get(self, path, params=None):
        self.calls.append(('GET', path, params, None))
        if path == '/v1/hosts':
            return KNOWN_HOSTS
        if path.startswith('/v1/hosts/'):
            return dict(KNOWN_HOSTS['hosts'][0], roles={}, vms=[],
                        steal_profile=None)
        if path == '/v1/profiles':
            return {'profiles': [{'name': 'web', 'default': False,
                                  'description': '', 'plugins': []}]}
        raise AssertionError(path)

    def post(self, path, body, params=None):
        self.calls.append(('POST', path, params, body))
        allowed = [{'host': h['host'], 'nodename': h['nodename']}
                   for h in body['hosts']]
        if path == '/v1/filter':
            return {'profile': 'web', 'role': None, 'degraded': False,
                    'degraded_reasons': [], 'allowed': allowed,
                    'rejected': [],
                    'weights': [dict(a, weight=1.0) for a in allowed]}
        return {'weights': [dict(a, weight=1.0, explain={
            'steal': {'score': 1.0, 'weight': 2.0}}) for a in allowed]}

    def compute_get(self, path, params=None):
        self.calls.append(('NOVA', path, params, None))
        return FLAVORS


class FakeApp:
    def __init__(self):
        self.client_manager = argparse.Namespace(steward=RecordingClient())
        self.stderr = io.StringIO()
        self.stdout = io.StringIO()
        self.options = argparse.Namespace()


def run(cls, argv):
    app = FakeApp()
    cmd = cls(app, None)
    parsed = cmd.get_parser('openstack steward').parse_args(argv)
    return app, cmd.take_action(parsed)


def test_host_show_quotes_the_name_into_the_path():
    app, (columns, values) = run(hosts.ShowHost, ['cmp a/1'])
    assert app.client_manager.steward.calls[0][1] == '/v1/hosts/cmp%20a%2F1'
    assert columns[0] == 'host'


def test_host_list_long():
    _, (columns, rows) = run(hosts.ListHost, ['--long'])
    assert 'Age Seconds' in columns and len(rows) == 2


def test_profile_show_of_an_unknown_profile_is_a_command_error():
    with pytest.raises(exceptions.CommandError, match="no profile 'gold'"):
        run(profiles.ShowProfile, ['gold'])


def test_score_sends_the_flavor_hints_and_every_known_host():
    app, (columns, rows) = run(score.Score, [
        '--flavor', 'm1.web', '--hint', 'steward_role=web', '--hint',
        'group=g1', '--availability-zone', 'az1'])
    calls = app.client_manager.steward.calls
    assert calls[0][:3] == ('NOVA', '/flavors/detail', {'is_public': 'None'})
    method, path, params, body = calls[-1]
    assert (method, path, params) == ('POST', '/v1/filter', {'weigh': 'true'})
    assert body['operation'] == 'boot'
    assert body['instance']['flavor']['memory_mb'] == 4096
    assert body['instance']['flavor']['extra_specs'] == {
        'steward:profile': 'web'}
    assert body['instance']['scheduler_hints'] == {
        'steward_role': ['web'], 'group': ['g1']}
    assert body['instance']['requested_az'] == 'az1'
    assert [h['host'] for h in body['hosts']] == ['cmp-a1', 'cmp-b1']
    assert [r[1] for r in rows] == ['cmp-a1', 'cmp-b1']
    assert app.stderr.getvalue() == 'profile web, role none\n'


def test_score_by_flavor_id_with_role_profile_and_named_hosts():
    app, _ = run(score.Score, [
        '--flavor', '1', '--role', 'db', '--profile', 'batch',
        '--host', 'cmp-b1', '--operation', 'live_migrate',
        '--server', 'u-1', '--current-host', 'cmp-a1'])
    body = app.client_manager.steward.calls[-1][3]
    assert body['instance']['flavor']['name'] == 'm1.small'
    assert body['instance']['scheduler_hints'] == {
        'steward_role': ['db'], 'steward_profile': ['batch']}
    assert [h['host'] for h in body['hosts']] == ['cmp-b1']
    assert body['operation'] == 'live_migrate'
    assert body['instance']['uuid'] == 'u-1'
    assert body['ignore_hosts'] == ['cmp-a1']


def test_score_explain_weighs_the_allowed_hosts():
    app, (columns, rows) = run(score.Score, ['--flavor', 'm1.web',
                                             '--explain'])
    method, path, params, body = app.client_manager.steward.calls[-1]
    assert (path, params) == ('/v1/weigh', {'explain': 'true'})
    assert columns[-1] == 'Scores'
    assert rows[0][-1] == 'steal=1.0*2.0'


@pytest.mark.parametrize('argv,message', [
    (['--flavor', 'm9.huge'], "no flavor 'm9.huge'"),
    (['--flavor', 'twin'], "2 flavors named 'twin'.*3, 4"),
    (['--flavor', '1', '--host', 'cmp-zz'], "no host 'cmp-zz'"),
    (['--flavor', '1', '--hint', 'nokey'], 'KEY=VALUE'),
])
def test_score_refuses_bad_input_with_a_command_error(argv, message):
    with pytest.raises(exceptions.CommandError, match=message):
        run(score.Score, argv)


def test_score_refuses_an_unknown_operation_at_parse_time(capsys):
    with pytest.raises(SystemExit):
        run(score.Score, ['--flavor', '1', '--operation', 'teleport'])
    assert 'invalid choice' in capsys.readouterr().err


def test_the_plugin_adds_its_global_options(monkeypatch):
    monkeypatch.delenv('OS_STEWARD_URL', raising=False)
    monkeypatch.setenv('OS_STEWARD_API_VERSION', '1')
    parser = plugin.build_option_parser(argparse.ArgumentParser())
    args = parser.parse_args(['--os-steward-url', 'http://127.0.0.1:8790'])
    assert args.os_steward_url == 'http://127.0.0.1:8790'
    assert args.os_steward_api_version == '1'
    assert plugin.API_VERSION_OPTION == 'os_steward_api_version'


class FakeCloudRegion:
    def __init__(self, config, override=None):
        self.config = config
        self.override = override

    def get_endpoint(self, service_type):
        assert service_type == 'scheduler-steward'
        return self.override


@pytest.mark.parametrize('config,override,expected', [
    ({}, None, None),
    ({'steward_url': 'http://s:8790'}, 'http://o:1', 'http://s:8790'),
    ({}, 'http://o:1', 'http://o:1'),
])
def test_make_client_endpoint_url_then_override_then_catalog(
        config, override, expected):
    instance = argparse.Namespace(
        _api_version={'steward': '1'}, session=object(),
        region_name='RegionOne', interface='public',
        _cli_options=FakeCloudRegion(config, override))
    c = plugin.make_client(instance)
    assert c.endpoint_override == expected
    assert c.ks_filter == {'service_type': 'scheduler-steward',
                           'region_name': 'RegionOne',
                           'interface': 'public'}


def test_an_unsupported_api_version_is_refused():
    instance = argparse.Namespace(
        _api_version={'steward': '2'}, session=object(),
        region_name=None, interface='public',
        _cli_options=FakeCloudRegion({}))
    with pytest.raises(exceptions.UnsupportedVersion, match='speaks 1'):
        plugin.make_client(instance)
