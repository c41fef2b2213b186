"""Steward's cluster view and telemetry, proven against real peers.

One module-wide cloud: the real Keystone 30, Nova API 34 (seeded with
Nova's own objects), Placement 16 and Prometheus (Debian) holding four
weeks of imported libvirt vCPU-delay history. Each test starts its own
steward binary (cheap) with the sources it needs:

- `[cluster] source = "nova"` logs in through clouds.yaml (password or
  application credential), reads hypervisors, aggregates, servers and
  server groups, and builds the view: AZs, VMs, roles, flavors.
- A move names only the instance: steward finds its AZ in the view.
- `[prometheus]` at 19:00 UTC, steward's wall clock set with Debian's
  faketime: host cmp-a1 is quieter than cmp-a2 now (2% vs 5% steal) but
  its history peaks in the 20:00 hour every day (30%), so the `web`
  profile ranks cmp-a2 first and says why; without the forecast
  (horizon_hours = 0) cmp-a1 ranks first.
- Nanoseconds published as seconds are dropped and counted.
- A stopped Prometheus makes the readings stale: unknown, degraded.

Every steward's log is added to a failed test's report (the conftest
hook prints each active cloud's logs).
"""

import os
import re
import time
import uuid

import pytest

from harness.faketime import last_utc_hour
from harness.faketime import start_steward_at
from harness.peers import Cloud
from harness.polling import wait_for
from harness.prometheus import Series
from harness.prometheus import start_prometheus
from harness.prometheus import steal_scenario
from harness.steward import start_steward

HOUR = 3600
DAY = 86400
DAYS = ('Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun')

# -- the cloud ------------------------------------------------------------

OTHER_PROJECT = '7f3e2d1c0b9a48f7a6e5d4c3b2a19080'
# nova_seed.py's project for servers that name none
DEFAULT_PROJECT = 'e5c4f0a1b2c34d5e8f9a0b1c2d3e4f50'
HOSTS = [
    {'host': 'cmp-a1', 'az': 'az1', 'vcpus': 64},
    {'host': 'cmp-a2', 'az': 'az1', 'vcpus': 64},
    {'host': 'cmp-b1', 'az': 'az2', 'vcpus': 32},
    # In no AZ aggregate (only in one without availability_zone): Nova
    # puts it in [DEFAULT] default_availability_zone, "nova".
    {'host': 'cmp-x1', 'vcpus': 48},
    {'host': 'cmp-x2', 'vcpus': 48},
]
SEED = {
    'hosts': HOSTS,
    'aggregates': [{'name': 'ssd', 'metadata': {'disk': 'ssd'},
                    'hosts': ['cmp-x1', 'cmp-a1']}],
    'server_groups': [
        {'name': 'web-tier', 'policy': 'anti-affinity'},
        {'name': 'db-tier', 'policy': 'anti-affinity'},
    ],
    'servers': [
        # metadata role wins over the server group's name
        {'name': 'web-1', 'host': 'cmp-a1', 'role': 'web',
         'group': 'web-tier'},
        {'name': 'web-2', 'host': 'cmp-b1', 'role': 'web',
         'group': 'web-tier', 'project_id': OTHER_PROJECT},
        # no role metadata: the role is the server group's name
        {'name': 'db-1', 'host': 'cmp-b1', 'group': 'db-tier',
         'flavor': 'm1.large'},
        {'name': 'tool-1', 'host': 'cmp-x1', 'role': 'tools',
         'flavor': 'm1.medium'},
    ],
}
EXPECTED_AZ = {'cmp-a1': 'az1', 'cmp-a2': 'az1', 'cmp-b1': 'az2',
               'cmp-x1': 'nova', 'cmp-x2': 'nova'}

# -- the history ----------------------------------------------------------

NOISY, STEADY, NS_HOST = 'cmp-a1', 'cmp-a2', 'cmp-b1'
NOISY_BASE, NOISY_PEAK, STEADY_STEAL = 0.02, 0.30, 0.05


def evening_peak(t):
    """cmp-a1's steal: 2%, and 30% from 20:05 to 20:55 UTC every day.
    The edges keep the whole peak inside the 20:00 hour of Prometheus'
    [1h:5m] subqueries, so the 19:00 hour stays at 2%."""
    minute = (t % DAY) / 60.0
    return NOISY_PEAK if 20 * 60 + 5 <= minute < 20 * 60 + 55 else NOISY_BASE


def libvirt_host(host, curve, vcpus=2):
    """libvirt_domain_vcpu_delay_seconds_total of one domain with `vcpus`
    vCPUs on `host`: seconds of delay per second follow `curve`."""
    domain_uuid = str(uuid.uuid5(uuid.NAMESPACE_URL, 'domain/' + host))
    return [Series('libvirt_domain_vcpu_delay_seconds_total', {
        'job': 'libvirt', 'instance': '%s:9177' % host, 'host': host,
        'domain': 'instance-%s' % host, 'uuid': domain_uuid,
        'vcpu': str(v)}, curve, 'counter', noise=0.03)
        for v in range(vcpus)]


def history():
    return (libvirt_host(NOISY, evening_peak)
            + libvirt_host(STEADY, lambda t: STEADY_STEAL)
            # One exporter publishes nanoseconds under the _seconds name.
            + steal_scenario(noisy=(), quiet=(NS_HOST,), domains_per_host=1,
                             ns=True))


def choose_clock(now=None):
    """(the latest 19:00 UTC at least 10 minutes past, the end of the
    imported history): steward's clock starts there and Prometheus holds
    four weeks of history up to an hour after it (or up to now)."""
    now = time.time() if now is None else now
    at = last_utc_hour(19, now=now, margin=600)
    return at, min(int(now), at + HOUR)


class Peers(Cloud):
    """The module's cloud; the logs of the stewards (and extra
    Prometheus servers) a test started join its failure report."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.extra_logs = {}

    def log_paths(self):
        paths = super().log_paths()
        paths.update(self.extra_logs)
        return paths


@pytest.fixture(scope='module')
def cloud(tmp_path_factory):
    at, end = choose_clock()
    c = Peers(tmp_path_factory.mktemp('cloud'), keystone=True, nova=True,
              prometheus=True, history=history(), weeks=4, history_end=end)
    c.start()
    try:
        c.seed(SEED)
        c.steward_identity()
        c.at19, c.history_end = at, end
        yield c
    finally:
        c.stop()


# -- steward --------------------------------------------------------------

def steward_env(clouds_yaml):
    """Ours, with only the clouds.yaml as OpenStack configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env['OS_CLIENT_CONFIG_FILE'] = clouds_yaml
    env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
    env['STEWARD_LOG'] = 'info'
    return env


@pytest.fixture
def stewards(cloud, tmp_path):
    """start(label, nova_cloud=..., prometheus=..., clock=..., ...): a
    steward with its own workdir and database; stopped after the test."""
    started = []

    def start(label, nova_cloud=None, prometheus=None, clock=None,
              max_age=300, profiles=None):
        workdir = tmp_path / label
        workdir.mkdir()
        extra = {'logging': {'level': 'info'}}
        if nova_cloud:
            extra['cluster'] = {'source': 'nova', 'refresh_seconds': 2}
            extra['openstack'] = {'cloud': nova_cloud}
        if prometheus is not None:
            extra['prometheus'] = {
                'url': prometheus.url, 'interval_seconds': 1,
                'rollup_interval_hours': 1000, 'history_weeks': 4,
                'timeout_seconds': 5}
        cloud.extra_logs['steward ' + label] = os.path.join(
            str(workdir), 'steward.log')
        config = {'env': steward_env(cloud.identity['clouds_yaml']),
                  'telemetry': {'max_age_seconds': max_age},
                  'profiles': profiles, 'extra': extra}
        if clock is None:
            st = start_steward(workdir, **config)
        else:
            st = start_steward_at(clock, workdir, **config)
        started.append(st)
        return st

    yield start
    for st in started:
        st.stop()
    for key in [k for k in cloud.extra_logs if k.startswith('steward ')]:
        del cloud.extra_logs[key]


def get(st, path):
    status, body, _ = st.request('GET', path)
    assert status == 200, 'GET %s: expected 200, got %s %r' % (
        path, status, body)
    return body



_SAMPLE = re.compile(r'^([A-Za-z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def metric_values(st, name, **labels):
    """The values of /metrics samples named `name` whose labels include
    `labels`."""
    status, text, _ = st.request('GET', '/metrics')
    assert status == 200, 'GET /metrics: %s %r' % (status, text)
    out = []
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if not m or m.group(1) != name:
            continue
        have = dict(_LABEL.findall(m.group(2) or ''))
        if all(have.get(k) == v for k, v in labels.items()):
            out.append(float(m.group(3)))
    return out


def host_entry(name, az, vcpus=64, instances=()):
    """A candidate host as the Nova shim sends it (az from aggregates:
    null for a host in no AZ aggregate)."""
    return {'host': name, 'nodename': name, 'az': az,
            'hypervisor_type': 'QEMU', 'vcpus_total': vcpus,
            'vcpus_used': 8, 'cpu_allocation_ratio': 4.0,
            'memory_mb_total': 262144, 'memory_mb_free': 200000,
            'ram_allocation_ratio': 1.0, 'disk_gb_total': 2000,
            'disk_gb_free': 1500, 'instance_uuids': list(instances)}


def wait_nova_view(st, cloud):
    """Until the first refresh from Nova is published."""
    want = {h['host'] for h in HOSTS}
    servers = {s['uuid'] for s in cloud.seeded['servers'].values()}

    def probe():
        hosts = {h['host'] for h in get(st, '/v1/hosts')['hosts']}
        if not want <= hosts:
            return None
        known = [u for u in servers
                 if st.request('GET', '/v1/vms/%s' % u)[0] == 200]
        return len(known) == len(servers)

    wait_for('steward to show the seeded hosts %s and %d servers from '
             'Nova' % (sorted(want), len(servers)), probe)


# -- 1. Keystone + Nova -> the view ---------------------------------------

@pytest.mark.parametrize('nova_cloud', ['steward', 'steward-appcred'])
def test_view_from_keystone_and_nova(cloud, stewards, nova_cloud):
    started = time.time()
    st = stewards('nova-' + nova_cloud, nova_cloud=nova_cloud)
    wait_nova_view(st, cloud)
    servers = cloud.seeded['servers']

    hosts = {h['host']: h for h in get(st, '/v1/hosts')['hosts']}
    assert {n: h['az'] for n, h in hosts.items()} == EXPECTED_AZ, (
        'GET /v1/hosts AZs: expected %r, got %r' % (
            EXPECTED_AZ, {n: h['az'] for n, h in hosts.items()}))
    x1 = get(st, '/v1/hosts/cmp-x1')
    assert x1['az'] == 'nova', (
        'cmp-x1 is in no AZ aggregate (only "ssd"): expected Nova\'s '
        'default AZ "nova", got %r' % x1['az'])
    assert x1['vms'] == [servers['tool-1']['uuid']], x1
    assert x1['roles'] == {'tools': 1}, x1
    b1 = get(st, '/v1/hosts/cmp-b1')
    assert b1['az'] == 'az2'
    assert sorted(b1['vms']) == sorted(
        [servers['web-2']['uuid'], servers['db-1']['uuid']]), b1
    assert b1['roles'] == {'web': 1, 'db-tier': 1}, (
        'cmp-b1 runs web-2 (metadata role=web, group web-tier) and db-1 '
        '(group db-tier only): expected roles {web: 1, db-tier: 1}, got '
        '%r' % b1['roles'])
    assert b1['steal'] is None and b1['fresh'] is False, (
        'no telemetry source: expected steal null and fresh false, got '
        '%r' % b1)

    expected = {
        'web-1': ('cmp-a1', 'az1', 'web', DEFAULT_PROJECT, 'm1.small'),
        'web-2': ('cmp-b1', 'az2', 'web', OTHER_PROJECT, 'm1.small'),
        'db-1': ('cmp-b1', 'az2', 'db-tier', DEFAULT_PROJECT, 'm1.large'),
        'tool-1': ('cmp-x1', 'nova', 'tools', DEFAULT_PROJECT, 'm1.medium'),
    }
    for name, want in expected.items():
        seeded = servers[name]
        vm = get(st, '/v1/vms/%s' % seeded['uuid'])
        got = (vm['host'], vm['az'], vm['role'], vm['project_id'],
               vm['flavor'])
        assert got == want, (
            'GET /v1/vms/%s (%s): expected (host, az, role, project_id, '
            'flavor) %r, got %r' % (seeded['uuid'], name, want, got))

    last = metric_values(st, 'steward_source_last_success_timestamp_seconds',
                         task='refresh', source='nova')
    assert len(last) == 1 and started - 1 <= last[0] <= time.time() + 1, (
        'expected one steward_source_last_success_timestamp_seconds'
        '{source="nova",task="refresh"} between %.0f and now, got %r' % (
            started, last))
    # The clouds.yaml entry holds only a password or only an application
    # credential: the login Keystone accepted was that one.
    log = st.log_text()
    assert 'logged in to Keystone cloud=%s ' % nova_cloud in log, log[-2000:]
    identity = cloud.identity
    for secret in (identity['user']['password'],
                   identity['app_credential']['secret']):
        assert secret not in log, 'a secret is in steward\'s log'


# -- 2. A move stays in its AZ, from the view alone -----------------------

def test_live_migration_stays_in_its_az_from_the_view(cloud, stewards):
    st = stewards('move', nova_cloud='steward-appcred')
    wait_nova_view(st, cloud)
    web1 = cloud.seeded['servers']['web-1']
    body = {
        'operation': 'move',
        'instance': {'uuid': web1['uuid']},
        'hosts': [host_entry('cmp-a2', 'az1'), host_entry('cmp-b1', 'az2',
                                                          vcpus=32)],
    }
    status, answer, _ = st.post('/v1/filter', body)
    assert status == 200, 'POST /v1/filter: %s %r' % (status, answer)
    assert [h['host'] for h in answer['allowed']] == ['cmp-a2'], (
        'web-1 runs on cmp-a1 (az1) per Nova: expected only cmp-a2 '
        'allowed, got %r' % answer)
    assert answer['rejected'] == [{
        'host': 'cmp-b1', 'nodename': 'cmp-b1', 'plugin': 'same_az',
        'reason': 'host is in AZ az2; the instance must stay in its AZ '
                  'az1'}], 'expected cmp-b1 rejected by same_az, got %r' % (
        answer['rejected'],)
    assert answer['degraded'] is False, (
        'the source AZ is known from the view: expected degraded false, '
        'got %r' % answer)
    assert answer['role'] == 'web', answer


def test_move_in_the_default_az_stays_in_it(cloud, stewards):
    """tool-1 runs on cmp-x1, in no AZ aggregate: Nova (and steward's
    view) put it in the default AZ "nova". A caller that sends az null for
    a candidate in no AZ aggregate (an older shim, or a nova.conf with an
    empty default_availability_zone) must still see cmp-x2 in "nova", as
    steward's view from Nova has it."""
    st = stewards('move-default-az', nova_cloud='steward')
    wait_nova_view(st, cloud)
    assert get(st, '/v1/hosts/cmp-x2')['az'] == 'nova'
    tool = cloud.seeded['servers']['tool-1']
    body = {
        'operation': 'move',
        'instance': {'uuid': tool['uuid']},
        'hosts': [host_entry('cmp-x2', None, vcpus=48),
                  host_entry('cmp-a2', 'az1')],
    }
    status, answer, _ = st.post('/v1/filter', body)
    assert status == 200, 'POST /v1/filter: %s %r' % (status, answer)
    assert [h['host'] for h in answer['allowed']] == ['cmp-x2'], (
        'tool-1 runs in the default AZ "nova" and cmp-x2 is in "nova" '
        'per steward\'s own view: expected cmp-x2 allowed and cmp-a2 '
        'rejected, got %r' % answer)
    assert [(h['host'], h['plugin']) for h in answer['rejected']] == [
        ('cmp-a2', 'same_az')], answer


# -- 3. THE MUST-SHOW: predictive steal at 19:00 --------------------------

def hour_of_week(t):
    return (int(t) // HOUR + 72) % 168


def hour_name(t):
    return '%s %02d:00 UTC' % (DAYS[time.gmtime(t).tm_wday],
                               time.gmtime(t).tm_hour)


def wait_telemetry(st, cloud, host, profile=True):
    """Until `host` has fresh steal (and a steal profile with a peak)."""
    def probe():
        status, h, _ = st.request('GET', '/v1/hosts/%s' % host)
        if status != 200 or h['steal'] is None or not h['fresh']:
            return None
        if profile and not (h['steal_profile'] or {}).get('peak'):
            return None
        return h
    return wait_for('fresh steal%s of %s at %s' % (
        ' and a steal profile' if profile else '', host,
        hour_name(cloud.at19)), probe)


def web_boot(hosts):
    """A boot of a web VM, as the shim sends it."""
    return {
        'operation': 'boot',
        'instance': {
            'uuid': str(uuid.uuid4()),
            'project_id': OTHER_PROJECT,
            'flavor': {'name': 'm1.web', 'vcpus': 2, 'memory_mb': 4096,
                       'root_gb': 20, 'ephemeral_gb': 0, 'swap': 0,
                       'extra_specs': {'steward:profile': 'web'}},
            'scheduler_hints': {'steward_role': ['web']},
        },
        'ignore_hosts': [],
        'hosts': hosts,
    }


def weigh(st, body):
    status, answer, _ = st.post('/v1/weigh?explain=true', body)
    assert status == 200, 'POST /v1/weigh: %s %r' % (status, answer)
    return answer, {w['host']: w for w in answer['weights']}


def steal_now_percent(note):
    m = re.search(r'steal now (\d+\.\d)%', note or '')
    return float(m.group(1)) if m else None


def test_predicted_steal_at_19h_prefers_the_host_without_the_20h_peak(
        cloud, stewards):
    at = cloud.at19
    peak_at = at + HOUR
    st = stewards('predict', prometheus=cloud.prometheus, clock=at)
    a1 = wait_telemetry(st, cloud, NOISY)
    a2 = wait_telemetry(st, cloud, STEADY)

    # Now (19:00) cmp-a1 is the quieter host.
    assert abs(a1['steal'] - NOISY_BASE) < 0.005, (
        '%s steal at %s: expected about %.3f, got %r' % (
            NOISY, hour_name(at), NOISY_BASE, a1))
    assert abs(a2['steal'] - STEADY_STEAL) < 0.005, (
        '%s steal at %s: expected about %.3f, got %r' % (
            STEADY, hour_name(at), STEADY_STEAL, a2))
    assert a1['source'] == 'prometheus', a1
    assert abs(a1['observed_at'] - at) < 120, (
        'steward\'s clock: expected readings observed just after %s, got '
        'observed_at %r' % (hour_name(at), a1['observed_at']))
    # Its history peaks at 20:00 every day.
    prof = a1['steal_profile']
    assert prof['peak'].endswith(' 20:00 UTC'), (
        '%s steal profile: expected the peak at 20:00, got %r' % (
            NOISY, prof['peak']))
    assert prof['weeks'] == 4, prof
    this_hour = prof['hours'][hour_of_week(at)]
    next_hour = prof['hours'][hour_of_week(peak_at)]
    assert this_hour is not None and this_hour < 0.04, (
        'p95 steal of %s in the hour %s: expected about %.2f, got %r' % (
            NOISY, hour_name(at), NOISY_BASE, this_hour))
    assert next_hour is not None and next_hour > 0.25, (
        'p95 steal of %s in the hour %s: expected about %.2f, got %r' % (
            NOISY, hour_name(peak_at), NOISY_PEAK, next_hour))
    flat = [v for v in a2['steal_profile']['hours'] if v is not None]
    assert len(flat) >= 160 and max(flat) < 0.06, (
        '%s steal profile: expected a steady %.2f, got max %r over %d '
        'hours' % (STEADY, STEADY_STEAL, max(flat or [None]), len(flat)))

    body = web_boot([host_entry(NOISY, 'az1'), host_entry(STEADY, 'az1')])
    answer, w = weigh(st, body)
    assert (answer['profile'], answer['role']) == ('web', 'web'), answer
    assert answer['degraded'] is False, answer
    assert w[STEADY]['weight'] > w[NOISY]['weight'], (
        'at %s with %s peaking at 20:00: expected %s to weigh more than '
        '%s, got %r' % (hour_name(at), NOISY, STEADY, NOISY, w))
    note = w[NOISY]['explain']['steal'].get('note', '')
    assert 'predicted up to' in note and '(at %s)' % hour_name(
        peak_at) in note and 'in the next 4 h' in note, (
        'explanation for %s: expected the predicted steal at %s, got %r'
        % (NOISY, hour_name(peak_at), note))
    predicted = re.search(r'predicted up to (\d+\.\d)%', note)
    assert predicted and float(predicted.group(1)) > 25, note
    now_a1 = steal_now_percent(note)
    now_a2 = steal_now_percent(w[STEADY]['explain']['steal'].get('note'))
    assert now_a1 is not None and now_a2 is not None and now_a1 < now_a2, (
        'expected the explanations to show %s quieter now than %s, got '
        '%r and %r' % (NOISY, STEADY, note,
                       w[STEADY]['explain']['steal'].get('note')))

    # The control: the same request without the forecast.
    st.stop()
    ctl = stewards('predict-control', prometheus=cloud.prometheus, clock=at,
                   profiles={'web': {'plugins': {'steal': {
                       'horizon_hours': 0}}}})
    wait_telemetry(ctl, cloud, NOISY)
    wait_telemetry(ctl, cloud, STEADY)
    answer, w = weigh(ctl, body)
    assert w[NOISY]['weight'] > w[STEADY]['weight'], (
        'horizon_hours = 0: expected %s (quieter now) to weigh more than '
        '%s, got %r' % (NOISY, STEADY, w))
    note = w[NOISY]['explain']['steal'].get('note', '')
    assert '(at %s)' % hour_name(at) in note, (
        'horizon_hours = 0: expected the prediction of this hour %s only, '
        'got %r' % (hour_name(at), note))


# -- 4. Unit errors -------------------------------------------------------

def test_nanoseconds_as_seconds_are_dropped_and_counted(cloud, stewards):
    st = stewards('units', nova_cloud='steward', prometheus=cloud.prometheus,
                  clock=cloud.at19)
    wait_nova_view(st, cloud)
    wait_telemetry(st, cloud, NOISY, profile=False)
    dropped = wait_for(
        'steward_telemetry_dropped_total{query="host_steal"}',
        lambda: sum(metric_values(st, 'steward_telemetry_dropped_total',
                                  query='host_steal')))
    # Prometheus really says more than one second of delay per second.
    raw = cloud.prometheus.query(
        'avg by (host) (rate(libvirt_domain_vcpu_delay_seconds_total[5m])'
        ' and libvirt_domain_vcpu_delay_seconds_total)',
        at=cloud.at19 + 60)
    values = {r['metric']['host']: float(r['value'][1]) for r in raw}
    assert values.get(NS_HOST, 0) > 1e6, values
    # Polls go on; each one drops it again.
    wait_for('another dropped host_steal reading', lambda: sum(
        metric_values(st, 'steward_telemetry_dropped_total',
                      query='host_steal')) > dropped)
    b1 = get(st, '/v1/hosts/%s' % NS_HOST)
    assert b1['steal'] is None, (
        '%s publishes ns as seconds (steal %.3g): expected steal null, got '
        '%r' % (NS_HOST, values[NS_HOST], b1))
    assert b1['az'] == 'az2', b1
    a1 = get(st, '/v1/hosts/%s' % NOISY)
    assert a1['steal'] is not None and a1['steal'] < 1.0, a1
    assert 'outside 0..1' in st.log_text(), st.log_text()[-3000:]


def test_nova_membership_survives_telemetry_polls(cloud, stewards):
    """vcpus is membership (model.rs: "az and vcpus are membership and
    do not go stale"): a Prometheus poll, which knows no vcpus, must not
    erase what Nova said."""
    st = stewards('membership', nova_cloud='steward',
                  prometheus=cloud.prometheus, clock=cloud.at19)
    wait_nova_view(st, cloud)
    wait_telemetry(st, cloud, NOISY, profile=False)
    polls = sum(metric_values(st, 'steward_source_refresh_duration_seconds'
                              '_count', source='prometheus', task='poll'))
    seen = []
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        seen.append(get(st, '/v1/hosts/%s' % NOISY)['vcpus'])
        time.sleep(0.2)
    after = sum(metric_values(st, 'steward_source_refresh_duration_seconds'
                              '_count', source='prometheus', task='poll'))
    assert after > polls, 'no Prometheus poll in 4 s: %r -> %r' % (
        polls, after)
    assert set(seen) == {64.0}, (
        'Nova says %s has 64 vCPUs: expected vcpus 64 throughout %d '
        'polls, got %r' % (NOISY, after - polls, seen))


# -- 5. Stale means unknown -----------------------------------------------

def test_stopped_prometheus_makes_steal_stale_and_answers_degraded(
        cloud, stewards, tmp_path):
    """Issue 7, faults: Prometheus down (the real server stopped). Steal
    goes stale after max_age_seconds, answers are marked degraded with a
    reason, /metrics counts the failed polls as kind="unreachable", and
    steward keeps answering; once Prometheus is back (restarted on the
    same port and data) the next polls bring fresh steal and the answers
    are no longer degraded."""
    prom = start_prometheus(tmp_path / 'prometheus', history=history(),
                            weeks=4, end=cloud.history_end)
    cloud.extra_logs['prometheus (stale test)'] = prom.process.log_path
    try:
        st = stewards('stale', prometheus=prom, clock=cloud.at19,
                      max_age=3)
        wait_telemetry(st, cloud, NOISY)
        wait_telemetry(st, cloud, STEADY)
        body = web_boot([host_entry(NOISY, 'az1'),
                         host_entry(STEADY, 'az1')])
        answer, _ = weigh(st, body)
        assert answer['degraded'] is False, answer
        errors_before = sum(metric_values(
            st, 'steward_source_errors_total', source='prometheus'))
        prom.stop()
        stopped = time.monotonic()

        h = wait_for('%s to go stale' % NOISY, lambda: (
            lambda h: h if h['fresh'] is False else None)(
            get(st, '/v1/hosts/%s' % NOISY)), timeout=15)
        assert time.monotonic() - stopped >= 2, (
            'fresh went false %.1fs after Prometheus stopped: expected '
            'max_age_seconds = 3 to keep it fresh that long' % (
                time.monotonic() - stopped))
        assert h['age_seconds'] > 3, h
        answer, w = weigh(st, body)
        assert answer['degraded'] is True, (
            'stale steal: expected a degraded answer, got %r' % answer)
        reasons = answer['degraded_reasons']
        assert any(r.startswith('steal:') and 'no fresh steal data' in r
                   for r in reasons), (
            'expected a steal reason for the stale data, got %r' % reasons)
        for host in (NOISY, STEADY):
            note = w[host]['explain']['steal'].get('note', '')
            assert 'no fresh steal data' in note, (host, note)
            assert 'steal now' not in note, (host, note)
        errors = wait_for(
            'steward_source_errors_total{source="prometheus"} to grow',
            lambda: (lambda n: n if n > errors_before else None)(sum(
                metric_values(st, 'steward_source_errors_total',
                              source='prometheus'))))
        unreachable = metric_values(st, 'steward_source_errors_total',
                                    source='prometheus', kind='unreachable')
        assert unreachable and unreachable[0] >= 1, (
            'expected kind="unreachable" errors, got %r (all: %r)' % (
                unreachable, errors))
        # It keeps answering.
        assert st.request('GET', '/healthz')[0] == 200
        status, answer, _ = st.post('/v1/filter', body)
        assert status == 200, (status, answer)
        assert [x['host'] for x in answer['allowed']] == [NOISY, STEADY]
        assert 'telemetry poll failed' in st.log_text()

        # Prometheus is back: fresh steal, and degraded clears by itself.
        prom.restart()
        for host in (NOISY, STEADY):
            wait_for('%s to be fresh again' % host, lambda h=host: (
                lambda x: x if x['fresh'] is True else None)(
                get(st, '/v1/hosts/%s' % h)), timeout=30)
        answer, w = weigh(st, body)
        assert answer['degraded'] is False, (
            'Prometheus is back: expected degraded to clear, got %r'
            % answer)
        assert not answer['degraded_reasons'], answer
        for host in (NOISY, STEADY):
            note = w[host]['explain']['steal'].get('note', '')
            assert 'no fresh steal data' not in note, (host, note)
    finally:
        prom.stop()
        cloud.extra_logs.pop('prometheus (stale test)', None)
