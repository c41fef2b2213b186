"""`[auth] strategy = "keystone"` against the real Keystone 30.

Steward validates each caller's `X-Auth-Token` with `GET /v3/auth/tokens`
using its own service credentials (the clouds.yaml cloud `steward`: user
`steward`, roles admin + service in project `service`), caches the answer
for a bounded time and never past the token's expiry, and maps Keystone
roles onto its own: a project's reader/member reads what is no project's
(profiles) and its own project's VMs, admin does everything (what Nova shows
to admins only, and the scopes: test_keystone_scopes.py).

- a member's token reads; it gets 403 on the callout (hosts are admin's in
  Nova) and on an admin (write) route; an admin's token passes there;
- no token, a garbage token and a revoked token get 401;
- a validation is cached: a token revoked after its first use still
  passes within [auth] cache_seconds, and is refused after;
- a token's expiry ends its cache entry (an application credential that
  expires in seconds makes a token that does);
- Keystone unreachable: 503 that says so, not 500;
- static tokens from [auth] token_file work beside Keystone's (the Nova
  shim keeps its own token) without asking Keystone;
- no token appears in steward's log or in an error body.
"""

import datetime
import os
import time

import pytest

from harness import rest
from harness.peers import Cloud
from harness.ports import free_port
from harness.steward import start_steward

CALLOUT = {'operation': 'boot',
           'instance': {'uuid': '6a1c3f6e-2d0b-4c4e-9a57-0e1f2a3b4c5d'},
           'hosts': [{'host': 'cmp-a1', 'az': 'az1'}]}


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    c = Cloud(tmp_path_factory.mktemp('keystone-auth'), keystone=True)
    c.start()
    try:
        c.steward_identity()
        ks = c.keystone
        c.member = ks.create_user('ops-member', roles=('member',))
        c.admin_user = ks.create_user('ops-admin', roles=('admin',))
        # a role implying none of Keystone's (manager implies member)
        c.nobody = ks.create_user('ops-nobody', roles=('auditor',))
        yield c
    finally:
        c.stop()


def steward_env(clouds_yaml):
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env['OS_CLIENT_CONFIG_FILE'] = clouds_yaml
    env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
    env['STEWARD_LOG'] = 'info'
    return env


@pytest.fixture
def stewards(cloud, tmp_path):
    started = []

    def start(label, cache_seconds=60, clouds_yaml=None, token_file=None):
        workdir = tmp_path / label
        workdir.mkdir()
        auth = {'strategy': 'keystone', 'cache_seconds': cache_seconds}
        if token_file:
            auth['token_file'] = token_file
        st = start_steward(
            workdir, auth='keystone',
            env=steward_env(clouds_yaml or cloud.identity['clouds_yaml']),
            extra={'auth': auth, 'openstack': {'cloud': 'steward'}})
        started.append(st)
        return st

    yield start
    for st in started:
        st.stop()


def login(cloud, user):
    token, body = cloud.keystone.login(user['name'], user['password'],
                                       project=user['project_name'])
    return token


def call(st, method, path, token, body=None):
    headers = {'X-Auth-Token': token} if token is not None else {}
    return st.request(method, path, body=body, role=None, headers=headers)


def expect(st, method, path, token, status, body=None, message=None):
    got, answer, _ = call(st, method, path, token, body)
    assert got == status, '%s %s: expected %s, got %s %r' % (
        method, path, status, got, answer)
    if message:
        text = answer['error']['message']
        assert message in text, '%s %s: expected %r in %r' % (
            method, path, message, text)
    return answer


def revoke(cloud, token):
    rest.call('DELETE', cloud.keystone.auth_url + '/auth/tokens', None,
              {'X-Auth-Token': cloud.keystone.admin_token(),
               'X-Subject-Token': token}, expect=(204,))


def test_roles_map_onto_routes(cloud, stewards):
    st = stewards('roles')
    member = login(cloud, cloud.member)
    admin = login(cloud, cloud.admin_user)
    nobody = login(cloud, cloud.nobody)
    expect(st, 'GET', '/v1/profiles', member, 200)
    expect(st, 'POST', '/v1/filter', member, 403, CALLOUT,
           'needs the cloud_reader role')
    answer = expect(st, 'POST', '/v1/filter', admin, 200, CALLOUT)
    assert answer['allowed'] == [{'host': 'cmp-a1', 'nodename': 'cmp-a1'}]
    expect(st, 'POST', '/v1/repair/plans', member, 403, {},
           'needs the admin role')
    expect(st, 'POST', '/v1/telemetry', member, 403,
           {'hosts': [{'host': 'cmp-a1', 'steal': 0.1}]})
    # a known caller on a path no route matches: 404, not a role check
    expect(st, 'POST', '/v1/repair/plan', admin, 404, {}, 'no such route')
    expect(st, 'POST', '/v1/telemetry', admin, 202,
           {'hosts': [{'host': 'cmp-a1', 'steal': 0.1}]})
    # a valid token with none of steward's roles
    expect(st, 'GET', '/v1/profiles', nobody, 403, None,
           'needs the reader role')
    expect(st, 'GET', '/healthz', None, 200)
    log = st.log_text()
    for token in (member, admin, nobody):
        assert token not in log, "a caller's token is in steward's log"


def test_no_garbage_or_revoked_token_is_401(cloud, stewards):
    st = stewards('refused')
    expect(st, 'GET', '/v1/hosts', None, 401, None, 'X-Auth-Token')
    garbage = 'gAAAAABnotatokenatall' + 'x' * 150
    answer = expect(st, 'GET', '/v1/hosts', garbage, 401, None,
                    'Keystone does not accept this token')
    assert answer['error']['code'] == 'steward.unauthorized'
    revoked = login(cloud, cloud.member)
    revoke(cloud, revoked)
    answer = expect(st, 'GET', '/v1/hosts', revoked, 401, None,
                    'expired or revoked')
    assert revoked not in repr(answer) and garbage not in repr(answer)
    log = st.log_text()
    assert revoked not in log and garbage not in log


def test_a_validation_is_cached_for_cache_seconds_only(cloud, stewards):
    cache = 3.0
    st = stewards('cache', cache_seconds=cache)
    token = login(cloud, cloud.member)
    validated = time.monotonic()
    expect(st, 'GET', '/v1/profiles', token, 200)
    revoke(cloud, token)
    status, answer, _ = call(st, 'GET', '/v1/profiles', token)
    if time.monotonic() - validated < cache - 0.5:
        assert status == 200, (
            'revoked %.1fs after its validation, within cache_seconds = '
            '%s: expected the cached 200, got %s %r'
            % (time.monotonic() - validated, cache, status, answer))
    time.sleep(max(0.0, validated + cache + 0.3 - time.monotonic()))
    expect(st, 'GET', '/v1/profiles', token, 401, None, 'revoked')


def test_the_tokens_expiry_ends_its_cache_entry(cloud, stewards):
    st = stewards('expiry', cache_seconds=600)
    expires = (datetime.datetime.now(datetime.timezone.utc)
               + datetime.timedelta(seconds=5)).replace(tzinfo=None)
    cred = cloud.keystone.create_application_credential(
        cloud.member, roles=('member',),
        expires_at=expires.isoformat(timespec='seconds'))
    token, body = cloud.keystone.login_app_credential(cred['id'],
                                                      cred['secret'])
    token_expiry = datetime.datetime.fromisoformat(
        body['expires_at'].replace('Z', '+00:00'))
    left = (token_expiry - datetime.datetime.now(
        datetime.timezone.utc)).total_seconds()
    assert 0 < left <= 6, (
        'Keystone caps an application credential token at the '
        'credential\'s expiry: expected it to expire within 6 s, got %r'
        % body['expires_at'])
    expect(st, 'GET', '/v1/profiles', token, 200)
    time.sleep(left + 0.5)
    # cache_seconds = 600 would still hold it; its expiry must not
    expect(st, 'GET', '/v1/profiles', token, 401, None, 'expired')


def test_keystone_unreachable_is_503_not_500(cloud, stewards, tmp_path):
    dead = 'http://127.0.0.1:%d/v3' % free_port()
    clouds = cloud.keystone.write_clouds_yaml(
        {'steward': dict(cloud.keystone.password_cloud(
            cloud.identity['user']), auth=dict(
                cloud.keystone.password_cloud(cloud.identity['user'])['auth'],
                auth_url=dead))},
        path=str(tmp_path / 'dead-clouds.yaml'))
    ops = 'metrics-reader-' + 'e' * 20
    tokens = tmp_path / 'tokens'
    tokens.write_text('%s reader\n' % ops)
    st = stewards('unreachable', clouds_yaml=clouds, token_file=str(tokens))
    token = login(cloud, cloud.member)
    answer = expect(st, 'GET', '/v1/hosts', token, 503, None,
                    'cannot validate the token with Keystone')
    assert answer['error']['code'] == 'steward.unavailable'
    # counted where operators alert on failing sources
    status, metrics, _ = call(st, 'GET', '/metrics', ops)
    assert status == 200
    sample = ('steward_source_errors_total{kind="transport",'
              'source="keystone"} 1')
    assert sample in metrics, [line for line in metrics.splitlines()
                               if 'source_errors' in line]
    text = repr(answer) + st.log_text()
    assert token not in text
    assert cloud.identity['user']['password'] not in text


def test_static_tokens_work_beside_keystone(cloud, stewards, tmp_path):
    shim = 'nova-shim-' + 'f' * 24
    tokens = tmp_path / 'tokens'
    tokens.write_text('%s reader\n' % shim)
    st = stewards('static-beside', token_file=str(tokens))
    before = cloud.keystone.log_text().count('GET /v3/auth/tokens')
    expect(st, 'POST', '/v1/filter', shim, 200, CALLOUT)
    expect(st, 'POST', '/v1/repair/plans', shim, 403, {},
           'needs the admin role')
    after = cloud.keystone.log_text().count('GET /v3/auth/tokens')
    assert after == before, 'a static token was sent to Keystone'
    # and Keystone tokens still pass
    expect(st, 'GET', '/v1/profiles', login(cloud, cloud.member), 200)
    assert shim not in st.log_text()


def test_a_steward_user_that_may_not_validate_is_told_what_to_grant(
        cloud, stewards, tmp_path):
    weak = cloud.keystone.create_user('steward-weak', project='service',
                                      roles=('member',))
    clouds = cloud.keystone.write_clouds_yaml(
        {'steward': cloud.keystone.password_cloud(weak)},
        path=str(tmp_path / 'weak-clouds.yaml'))
    st = stewards('weak', clouds_yaml=clouds)
    answer = expect(st, 'GET', '/v1/hosts', login(cloud, cloud.member), 503,
                    None, 'give steward\'s user the service role')
    assert 'identity:validate_token' in answer['error']['message']
