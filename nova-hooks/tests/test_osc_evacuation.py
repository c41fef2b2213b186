"""`openstack steward evacuation list|show|approve`: what each command sends
and the rows it makes of steward's answers (shaped as GET
/v1/recovery/evacuations answers), with a scripted client."""

from test_osc_repair_rebalance import calls
from test_osc_repair_rebalance import run

from steward_nova.osc import evacuation

INCIDENT = {
    'id': 'i-1', 'host': 'cmp-1', 'az': 'az1', 'service_id': 's-1',
    'state': 'done', 'mode': 'auto', 'approved_by': 'steward (mode auto)',
    'error': None, 'released_by': None, 'released_at': None,
    'evidence': {'host': 'cmp-1', 'evidence': [
        {'witness': 'nova_service', 'verdict': 'dead',
         'detail': 'nova-compute s-1 on cmp-1 is down', 'age_seconds': 75.2},
        {'witness': 'telemetry', 'verdict': 'dead',
         'detail': 'newest sample 80 s old', 'age_seconds': 80.0}]},
}


def test_list_sends_the_filters_and_shows_one_row_per_incident():
    blocked = dict(INCIDENT, id='i-2', host='cmp-4', state='blocked',
                   error='fencing host cmp-4 failed')
    app, (columns, rows) = run(
        evacuation.ListEvacuation, ['--state', 'blocked', '--limit', '5'],
        {('GET', '/v1/recovery/evacuations'): {'evacuations': [blocked]}})
    assert calls(app) == [('GET', '/v1/recovery/evacuations',
                           {'state': 'blocked', 'limit': 5}, None)]
    assert columns[0] == 'ID'
    assert rows == [('i-2', 'cmp-4', 'az1', 'blocked', 'no',
                     'fencing host cmp-4 failed')]


def test_show_lists_evidence_with_ages_vms_and_steps():
    detail = dict(INCIDENT, vms=[
        {'vm': 'v-1', 'name': 'web-1', 'state': 'done', 'target': 'cmp-2',
         'error': None},
        {'vm': 'v-2', 'name': 'db-1', 'state': 'blocked', 'target': None,
         'error': 'No valid host was found'}],
        events=[{'from': 'new', 'to': 'suspected', 'detail': 'x'}])
    app, (names, values) = run(
        evacuation.ShowEvacuation, ['i-1'],
        {('GET', '/v1/recovery/evacuations/i-1'): detail})
    shown = dict(zip(names, values, strict=True))
    assert 'nova_service: nova-compute s-1 on cmp-1 is down (75 s old)' \
        in shown['evidence']
    assert 'v-2 (db-1) blocked -> -: No valid host was found' in shown['vms']
    assert shown['events'] == 'new -> suspected: x'


def test_approve_posts_to_the_incident_and_quotes_its_id():
    app, (names, values) = run(
        evacuation.ApproveEvacuation, ['i/1'],
        {('POST', '/v1/recovery/evacuations/i%2F1/approve'):
         dict(INCIDENT, state='suspected')})
    assert calls(app) == [
        ('POST', '/v1/recovery/evacuations/i%2F1/approve', None, None)]
    assert dict(zip(names, values, strict=True))['state'] == 'suspected'
