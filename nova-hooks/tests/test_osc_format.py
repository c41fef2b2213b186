"""The pure pieces of `openstack steward ...`: rows from steward's
answers, hint parsing, the what-if body from a Nova flavor, and error
messages. Answers are shaped exactly as steward's /v1 routes give them."""

import json

import pytest

from steward_nova.osc import client
from steward_nova.osc import format as fmt

HOSTS = {'hosts': [
    {'host': 'cmp-a1', 'az': 'az1', 'steal': 0.0213456, 'load5': 3.5,
     'cpu_use': 0.4, 'vcpus': 64.0, 'observed_at': 1795000000.0,
     'age_seconds': 12.5, 'fresh': True, 'source': 'push'},
    {'host': 'cmp-b1', 'az': None, 'steal': None, 'load5': None,
     'cpu_use': None, 'vcpus': None, 'observed_at': None,
     'age_seconds': None, 'fresh': False, 'source': 'nova'},
]}

PROFILES = {'profiles': [
    {'name': 'web', 'description': 'web tier', 'default': False,
     'plugins': [{'name': 'steal', 'weight': 3.0, 'params': {}},
                 {'name': 'role_spread', 'weight': 1.0,
                  'params': {'max_per_host': 2, 'max_skew': 1}}]},
    {'name': 'default', 'description': 'steal and spread', 'default': True,
     'plugins': [{'name': 'same_az', 'weight': 0.0, 'params': {}}]},
]}

# GET /flavors/detail at compute 2.61, as Nova 34 answers it.
NOVA_FLAVOR = {
    'id': 'f-web', 'name': 'm1.web', 'ram': 4096, 'disk': 20, 'swap': '',
    'OS-FLV-EXT-DATA:ephemeral': 5, 'OS-FLV-DISABLED:disabled': False,
    'vcpus': 2, 'os-flavor-access:is_public': True, 'rxtx_factor': 1.0,
    'links': [], 'description': None,
    'extra_specs': {'steward:profile': 'web', 'hw:cpu_policy': 'shared'}}


def test_host_rows_keep_steward_order_and_round_fractions():
    columns, rows = fmt.host_rows(HOSTS)
    assert columns == ('Host', 'AZ', 'Steal', 'Load5', 'vCPUs', 'Fresh',
                       'Source')
    assert rows == [('cmp-a1', 'az1', 0.0213, 3.5, 64.0, True, 'push'),
                    ('cmp-b1', None, None, None, None, False, 'nova')]


def test_host_rows_long_adds_measurement_times():
    columns, rows = fmt.host_rows(HOSTS, long=True)
    assert columns[-3:] == ('CPU Use', 'Observed At', 'Age Seconds')
    assert rows[0][-3:] == (0.4, 1795000000.0, 12.5)


def test_host_detail_lists_roles_vms_and_the_steal_peak():
    detail = dict(HOSTS['hosts'][0], roles={'web': 2, 'db': 1},
                  vms=['u1', 'u2', 'u3'],
                  steal_profile={'hours': [None] * 168, 'weeks': 4,
                                 'computed_at': 1.0, 'peak': 'Mon 20:00'})
    columns, values = fmt.host_detail(detail)
    shown = dict(zip(columns, values, strict=True))
    assert shown['host'] == 'cmp-a1'
    assert shown['roles'] == 'db=1, web=2'
    assert shown['vms'] == 'u1, u2, u3'
    assert shown['steal_peak_hour'] == 'Mon 20:00'
    assert shown['steal_profile_weeks'] == 4


def test_host_detail_without_history_or_vms():
    columns, values = fmt.host_detail(dict(HOSTS['hosts'][1], roles={},
                                           vms=[], steal_profile=None))
    shown = dict(zip(columns, values, strict=True))
    assert shown['roles'] == '' and shown['vms'] == ''
    assert shown['steal_peak_hour'] is None


def test_profiles_sorted_with_their_plugins():
    columns, rows = fmt.profile_rows(PROFILES)
    assert columns == ('Name', 'Default', 'Plugins', 'Description')
    assert [r[0] for r in rows] == ['default', 'web']
    assert rows[1][2] == 'steal (weight 3.0), role_spread (weight 1.0)'
    assert rows[0][1] is True


def test_profile_show_one_field_per_plugin_with_params():
    columns, values = fmt.profile_detail(fmt.find_profile(PROFILES, 'web'))
    shown = dict(zip(columns, values, strict=True))
    assert shown['plugin role_spread'] == \
        'weight 1.0; max_per_host=2, max_skew=1'
    assert shown['plugin steal'] == 'weight 3.0'


def test_an_unknown_profile_names_those_there_are():
    with pytest.raises(fmt.ArgumentError, match="no profile 'gold'.*"
                       "default, web"):
        fmt.find_profile(PROFILES, 'gold')


def test_hints_are_lists_as_nova_keeps_them():
    assert fmt.parse_hints(['steward_role=web', 'group=a', 'group=b',
                            'empty=']) == {
        'steward_role': ['web'], 'group': ['a', 'b'], 'empty': ['']}
    assert fmt.parse_hints([]) == {}
    assert fmt.parse_hints(['k=a=b']) == {'k': ['a=b']}


@pytest.mark.parametrize('bad', ['steward_role', '=web', ' =x'])
def test_a_hint_without_key_or_equals_is_refused_with_an_example(bad):
    with pytest.raises(fmt.ArgumentError, match='KEY=VALUE'):
        fmt.parse_hints([bad])


def test_the_callout_flavor_maps_novas_names():
    assert fmt.callout_flavor(NOVA_FLAVOR) == {
        'name': 'm1.web', 'vcpus': 2, 'memory_mb': 4096, 'root_gb': 20,
        'ephemeral_gb': 5, 'swap': 0,
        'extra_specs': {'steward:profile': 'web', 'hw:cpu_policy': 'shared'}}
    assert fmt.callout_flavor(dict(NOVA_FLAVOR, swap=512))['swap'] == 512


def test_candidates_are_every_known_host_or_those_named():
    assert fmt.callout_hosts(HOSTS) == [
        {'host': 'cmp-a1', 'nodename': 'cmp-a1', 'az': 'az1',
         'vcpus_total': 64.0},
        {'host': 'cmp-b1', 'nodename': 'cmp-b1', 'az': None}]
    assert [h['host'] for h in fmt.callout_hosts(HOSTS, ['cmp-b1'])] == \
        ['cmp-b1']


def test_a_candidate_steward_does_not_know_is_named():
    with pytest.raises(fmt.ArgumentError,
                       match="no host 'cmp-zz'.*steward host list"):
        fmt.callout_hosts(HOSTS, ['cmp-a1', 'cmp-zz'])
    with pytest.raises(fmt.ArgumentError, match='knows no host yet'):
        fmt.callout_hosts({'hosts': []})


def test_the_what_if_body_is_a_valid_callout():
    flavor = fmt.callout_flavor(NOVA_FLAVOR)
    hosts = fmt.callout_hosts(HOSTS)
    body = fmt.callout_body('boot', flavor, hosts,
                            hints={'steward_role': ['web']}, az='az1')
    assert body['operation'] == 'boot'
    assert body['instance']['requested_az'] == 'az1'
    assert body['instance']['scheduler_hints'] == {'steward_role': ['web']}
    assert body['instance']['flavor'] is flavor
    assert len(body['instance']['uuid']) == 36
    assert 'ignore_hosts' not in body
    json.dumps(body)  # it goes on the wire as it is


def test_a_move_ignores_the_current_host():
    body = fmt.callout_body('live_migrate', {}, [], current_host='cmp-a1',
                            instance_uuid='u-1')
    assert body['ignore_hosts'] == ['cmp-a1']
    assert body['instance']['current_host'] == 'cmp-a1'
    assert body['instance']['uuid'] == 'u-1'


def test_an_unknown_operation_lists_the_known_ones():
    with pytest.raises(fmt.ArgumentError, match='boot, live_migrate'):
        fmt.callout_body('teleport', {}, [])


FILTER_ANSWER = {
    'request_id': 'req-1', 'profile': 'web', 'role': 'web',
    'degraded': True, 'degraded_reasons': ['no fresh steal data for 1 of 3'],
    'allowed': [{'host': 'a', 'nodename': 'a'}, {'host': 'b',
                                                 'nodename': 'b'}],
    'rejected': [{'host': 'c', 'nodename': 'c', 'plugin': 'same_az',
                  'reason': 'host is in AZ az2; the instance must stay in '
                            'its AZ az1'}],
    'weights': [{'host': 'a', 'nodename': 'a', 'weight': 0.5},
                {'host': 'b', 'nodename': 'b', 'weight': 1.25}]}
SCORED_HOSTS = [{'host': 'a', 'nodename': 'a', 'az': 'az1'},
                {'host': 'b', 'nodename': 'b', 'az': 'az1'},
                {'host': 'c', 'nodename': 'c', 'az': 'az2'}]


def test_score_rows_rank_by_weight_then_list_rejections():
    columns, rows = fmt.score_rows(FILTER_ANSWER, SCORED_HOSTS)
    assert columns == ('Rank', 'Host', 'Nodename', 'AZ', 'Allowed',
                       'Weight', 'Plugin', 'Reason')
    assert rows == [
        (1, 'b', 'b', 'az1', True, 1.25, '', ''),
        (2, 'a', 'a', 'az1', True, 0.5, '', ''),
        (None, 'c', 'c', 'az2', False, None, 'same_az',
         'host is in AZ az2; the instance must stay in its AZ az1')]


def test_score_rows_with_explain_add_each_plugins_part():
    explain = {('a', 'a'): {'steal': {'score': 0.5, 'weight': 1.0}},
               ('b', 'b'): {'steal': {'score': 0.41666, 'weight': 3.0},
                            'az_spread': {'score': 1.0, 'weight': 1.0}}}
    columns, rows = fmt.score_rows(FILTER_ANSWER, SCORED_HOSTS, explain)
    assert columns[-1] == 'Scores'
    assert rows[0][-1] == 'az_spread=1.0*1.0, steal=0.417*3.0'
    assert rows[2][-1] == ''


def test_equal_weights_rank_by_host_name():
    answer = dict(FILTER_ANSWER, rejected=[], weights=[
        {'host': 'b', 'nodename': 'b', 'weight': 1.0},
        {'host': 'a', 'nodename': 'a', 'weight': 1.0}])
    _, rows = fmt.score_rows(answer, SCORED_HOSTS)
    assert [r[1] for r in rows] == ['a', 'b']


def test_the_summary_says_degraded_and_why():
    assert fmt.score_summary(FILTER_ANSWER) == (
        'profile web, role web; DEGRADED: no fresh steal data for 1 of 3')
    assert fmt.score_summary(dict(FILTER_ANSWER, degraded=False,
                                  role=None)) == 'profile web, role none'


def test_stewards_error_body_becomes_one_line_with_its_code():
    body = json.dumps({'error': {
        'code': 'steward.not_found',
        'message': 'steward knows no hypervisor "x"; GET /v1/hosts lists '
                   'those it knows', 'field': None}})
    assert client.error_message('steward', 'GET', '/v1/hosts/x', 404,
                                body) == (
        'steward GET /v1/hosts/x answered 404: steward.not_found: steward '
        'knows no hypervisor "x"; GET /v1/hosts lists those it knows')


def test_a_field_at_fault_is_named():
    body = json.dumps({'error': {'code': 'steward.bad_request',
                                 'message': 'must be >= 0',
                                 'field': 'hosts[0].vcpus_total'}})
    assert client.error_message('steward', 'POST', '/v1/filter', 400,
                                body).endswith(
        'steward.bad_request: must be >= 0 (field hosts[0].vcpus_total)')


def test_novas_and_unknown_error_bodies():
    nova = json.dumps({'itemNotFound': {'code': 404,
                                        'message': 'Flavor x not found.'}})
    assert client.error_message('nova', 'GET', '/flavors/x', 404,
                                nova).endswith('404: Flavor x not found.')
    assert client.error_message('steward', 'GET', '/', 502,
                                '<html>\n Bad   gateway</html>').endswith(
        '502: <html> Bad gateway</html>')
    assert client.error_message('steward', 'GET', '/', 500, '').endswith(
        '500: (empty body)')
