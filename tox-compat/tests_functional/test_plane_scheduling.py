"""Steward inside a real Nova: the shim in nova-scheduler, tried through the
real OpenStack CLI on the whole control plane (harness/nova_plane.py:
Keystone, Nova API, conductor, scheduler, six fake-driver computes).

Layout: az1 = cmp-1, cmp-2, cmp-3; az2 = cmp-4, cmp-5; az3 = cmp-6 alone.
Steward runs as the push-only deployment does (no Nova cluster view; the
telemetry pushes carry steal and no AZ), so everything it knows of AZs comes
from the scheduling requests themselves.

Every claim has its control in the same plane with the shim removed
(test_controls_without_the_shim, last): stock Nova boots onto the noisy
host, puts a third `web` on the one az3 host, moves a server that was booted
without an AZ out of az2 on a live migration, and honours a cross-AZ --host;
test_control_an_unshelve_without_the_shim_leaves_the_az shows stock Nova
unshelving out of az2.
"""

import json
import time

import pytest

from harness.peers import Cloud
from harness.process import PeerStartError
from harness.steward import start_steward

AZS = {'az1': ['cmp-1', 'cmp-2', 'cmp-3'], 'az2': ['cmp-4', 'cmp-5'],
       'az3': ['cmp-6']}
NOISY = 'cmp-1'
PROFILES = {
    # Avoiding a noisy host is a filter here, so the check cannot depend
    # on how Nova's own weighers rank empty fake hosts.
    'default': {'plugins': {'steal': {'max_steal': 0.25}}},
}
WEB = ('--hint', 'steward_profile=web', '--hint', 'steward_role=web')


@pytest.fixture(scope='module')
def plane(tmp_path_factory):
    cloud = Cloud(tmp_path_factory.mktemp('plane'), plane=True, computes=6,
                  azs=AZS)
    cloud.start()
    st = None
    try:
        st = start_steward(tmp_path_factory.mktemp('steward'),
                           profiles=PROFILES)
        cloud.plane.use_steward(st)
        push_steal(st)
        yield cloud.plane, st
    finally:
        if st is not None:
            st.stop()
        cloud.stop()


KEEP = ('mover', 'filler-5')


@pytest.fixture(autouse=True)
def clean_servers(plane):
    """After each test, every server it made is deleted (even on failure),
    so the next one starts from the same hosts."""
    yield
    pl, _ = plane
    for s in pl.nova.get('/servers/detail')['servers']:
        if s['name'] not in KEEP:
            pl.nova.call('DELETE', '/servers/%s' % s['id'], expect=(204,))
    deadline = time.monotonic() + 90
    while [s for s in pl.nova.get('/servers')['servers']
           if s['name'] not in KEEP]:
        assert time.monotonic() < deadline, 'servers not deleted'
        time.sleep(0.5)


def push_steal(st):
    """Fresh steal for every host, no AZ (the push-only deployment)."""
    st.push_telemetry(hosts=[
        {'host': 'cmp-%d' % i, 'steal': 0.4 if 'cmp-%d' % i == NOISY
         else 0.01} for i in range(1, 7)])


def boot(plane, name, *extra, wait='ACTIVE'):
    """openstack server create (no --wait); the server once `wait`."""
    out = json.loads(plane.openstack(
        '--os-compute-api-version', '2.95', 'server', 'create', '--flavor',
        'm1.small', '--image', 'cirros', '--nic', 'none', *extra, name,
        '-f', 'json'))
    if wait is None:
        return out
    return plane.wait_server(out['id'], wait)


def servers_named(plane, prefix):
    return plane.nova.get('/servers/detail?name=%s' % prefix)['servers']


def host_of(server):
    return server['OS-EXT-SRV-ATTR:host']


def fault(server):
    return (server.get('fault') or {}).get('message', '')


# -- boots --------------------------------------------------------------------

def test_boots_avoid_the_noisy_host(plane):
    """Three boots into az1 (cmp-1 steals 40 %): none lands on cmp-1. The
    control (stock Nova) puts the third on cmp-1, its emptiest host."""
    pl, st = plane
    push_steal(st)
    hosts = [host_of(boot(pl, 'noisy-%d' % i, '--availability-zone', 'az1'))
             for i in range(3)]
    assert NOISY not in hosts, hosts
    assert set(hosts) <= {'cmp-2', 'cmp-3'}


def test_role_cap_holds_for_boots_one_at_a_time(plane):
    """The web profile caps role web at 2 per host; az3 has one host. Two
    boots one after the other go ACTIVE there, the third finds no valid
    host."""
    pl, st = plane
    push_steal(st)
    for i in range(2):
        assert host_of(boot(pl, 'cap1-%d' % i, '--availability-zone', 'az3',
                            *WEB)) == 'cmp-6'
    third = boot(pl, 'cap1-2', '--availability-zone', 'az3', *WEB,
                 wait='ERROR')
    assert 'No valid host' in fault(third), third


def test_a_multi_create_within_the_cap_goes_active(plane):
    """Control of the one below: --min 2 --max 2 of role web into az3 fits
    the cap (2 on cmp-6) and both go ACTIVE. (It runs first: the picks of
    a multi-create that fails as a whole count on their host until Nova
    lists them or for 120 s, docs/callout.md.)"""
    pl, st = plane
    push_steal(st)
    boot(pl, 'multi2', '--availability-zone', 'az3', '--min', '2', '--max',
         '2', *WEB, wait=None)
    deadline = time.monotonic() + 120
    while True:
        found = servers_named(pl, 'multi2')
        if len(found) == 2 and all(s['status'] == 'ACTIVE' for s in found):
            break
        assert not any(s['status'] == 'ERROR' for s in found), [
            fault(s) for s in found]
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    assert {host_of(s) for s in found} == {'cmp-6'}


def test_role_cap_holds_inside_one_multi_create(plane):
    """--min 3 --max 3 of role web into az3 (one host, cap 2): Nova places
    the three from one scheduling request; steward must see the first two
    picks when it answers for the third, so the request finds no valid
    host and no server is ACTIVE on cmp-6."""
    pl, st = plane
    push_steal(st)
    boot(pl, 'multi3', '--availability-zone', 'az3', '--min', '3', '--max',
         '3', *WEB, wait=None)
    deadline = time.monotonic() + 120
    while True:
        found = servers_named(pl, 'multi3')
        if len(found) == 3 and all(
                s['status'] in ('ACTIVE', 'ERROR')
                and not s.get('OS-EXT-STS:task_state') for s in found):
            break
        assert time.monotonic() < deadline, found
        time.sleep(0.5)
    statuses = sorted(s['status'] for s in found)
    assert statuses == ['ERROR'] * 3, [(s['name'], s['status'], host_of(s))
                                       for s in found]


# -- moves of a server booted without an AZ ----------------------------------

@pytest.fixture(scope='module')
def mover(plane):
    """A server booted onto cmp-4 (az2) by --host, with no AZ named: Nova
    itself would let every move take it anywhere. A huge filler leaves
    cmp-5 all but full (room for a few small servers), so Nova's own
    weighers rank it last and a stock Nova move leaves az2 (the controls)."""
    pl, _ = plane
    boot(pl, 'filler-5', '--host', 'cmp-5', '--flavor', 'm1.huge')
    s = boot(pl, 'mover', '--host', 'cmp-4')
    assert host_of(s) == 'cmp-4'
    assert s['OS-EXT-AZ:availability_zone'] == 'az2'
    return s['id']


def _back_to_cmp4(pl, server_id):
    """Put the mover back on cmp-4 (an explicit, same-AZ live migration)."""
    if pl.server_host(server_id) != 'cmp-4':
        pl.live_migrate(server_id, 'cmp-4')
    assert pl.server_host(server_id) == 'cmp-4'


def test_live_migration_without_host_stays_in_az(plane, mover):
    pl, st = plane
    push_steal(st)
    mig, s = pl.live_migrate(mover)
    assert mig['status'] == 'completed', mig
    assert host_of(s) == 'cmp-5', host_of(s)
    _back_to_cmp4(pl, mover)


@pytest.mark.parametrize('command', [('migrate',),
                                     ('resize', '--flavor', 'm1.medium')],
                         ids=['cold-migration', 'resize'])
def test_cold_migration_and_resize_without_host_stay_in_az(plane, mover,
                                                         command):
    pl, st = plane
    push_steal(st)
    pl.openstack('--os-compute-api-version', '2.95', 'server', *command,
                 mover)
    s = pl.wait_server(mover, 'VERIFY_RESIZE')
    assert host_of(s) == 'cmp-5', host_of(s)
    pl.openstack('server', command[0], 'confirm', mover)
    pl.wait_server(mover)
    _back_to_cmp4(pl, mover)


def test_evacuate_without_host_stays_in_az(plane, mover):
    """A server on cmp-5 (az2); cmp-5's nova-compute is killed and its
    service forced down, as an operator does before evacuating; the server
    is rebuilt on cmp-4, az2's other host. (A fresh server: the fake driver
    keeps a server it once ran in its memory and refuses to rebuild it
    there.)"""
    pl, st = plane
    push_steal(st)
    evac = boot(pl, 'evac', '--host', 'cmp-5')['id']
    before = pl.migrations(evac)
    pl.kill_compute('cmp-5')
    pl.force_down('cmp-5', True)
    try:
        pl.openstack('--os-compute-api-version', '2.95', 'server',
                     'evacuate', evac)
        mig = pl.wait_migration(evac, before)
        assert mig['status'] == 'done', mig
        assert pl.server_host(evac) == 'cmp-4'
    finally:
        pl.recover_host('cmp-5')


def test_explicit_host_in_another_az_is_refused(plane, mover):
    """An admin's live migration to cmp-2 (az1) by name: Nova asks the
    scheduler to check the host, steward refuses it, the API answers "No
    valid host" and the server stays on cmp-4, ACTIVE."""
    pl, st = plane
    push_steal(st)
    with pytest.raises(PeerStartError) as refused:
        pl.openstack('--os-compute-api-version', '2.95', 'server', 'migrate',
                     '--live-migration', '--host', 'cmp-2', mover)
    assert 'No valid host' in str(refused.value)
    assert pl.wait_server(mover)['OS-EXT-SRV-ATTR:host'] == 'cmp-4'
    rejected = [line for line in pl.scheduler_log().splitlines()
                if 'Steward rejected host cmp-2' in line and mover in line]
    assert rejected and 'same_az' in rejected[-1], rejected


def test_an_admin_grant_lets_one_move_leave_the_az(plane, mover):
    """An admin grants the mover one move into az1 (POST
    /v1/vms/{uuid}/cross-az): the live migration to cmp-2 that steward
    refused above completes, steward's log names the grant. The grant is
    used up: the move back to az2 is refused until a second grant; a
    reader cannot grant."""
    pl, st = plane
    push_steal(st)
    path = '/v1/vms/%s/cross-az' % mover
    status, _, _ = st.post(path, {'to_az': 'az1', 'reason': 'x'},
                           role='reader')
    assert status == 403
    status, grant, _ = st.post(path, {
        'to_az': 'az1', 'reason': 'moving web out of az2 for its rack work'},
        role='admin')
    assert status == 201, grant
    mig, moved = pl.live_migrate(mover, 'cmp-2')
    assert mig['status'] == 'completed', mig
    assert host_of(moved) == 'cmp-2'
    assert moved['OS-EXT-AZ:availability_zone'] == 'az1'
    assert grant['id'] in st.log_text()
    status, grants, _ = st.request('GET', '/v1/cross-az-grants',
                                   role='admin')
    assert [g['state'] for g in grants['grants']
            if g['id'] == grant['id']] == ['used'], grants
    # One request only: back to az2 needs a grant of its own.
    with pytest.raises(PeerStartError) as refused:
        pl.live_migrate(mover, 'cmp-4')
    assert 'No valid host' in str(refused.value)
    assert pl.wait_server(mover)['OS-EXT-SRV-ATTR:host'] == 'cmp-2'
    status, _, _ = st.post(path, {'to_az': 'az2', 'reason': 'back home'},
                           role='admin')
    assert status == 201
    _back_to_cmp4(pl, mover)


# -- steward gone, steward back -----------------------------------------------

def test_steward_killed_boots_go_active_with_one_warning(plane):
    pl, st = plane
    before = pl.scheduler_log().count('Steward callout')
    st.kill()
    try:
        for i in range(2):
            boot(pl, 'gone-%d' % i)
        warnings = pl.scheduler_log().count('Steward callout') - before
        # warn_interval is 60 s: two boots in it make one warning.
        assert warnings == 1, pl.scheduler_log()[-4000:]
    finally:
        st.restart()
    push_steal(st)
    mark = len(pl.scheduler_log())
    boot(pl, 'back-0')
    after = pl.scheduler_log()[mark:]
    assert 'Steward callout' not in after, after
    assert 'Steward allowed' in after, after


# -- unshelve ----------------------------------------------------------------

def _service_id(pl, host):
    return [s['id'] for s in pl.nova.get('/os-services?binary=nova-compute')
            ['services'] if s['host'] == host][0]


def _set_service(pl, host, status):
    pl.nova.call('PUT', '/os-services/%s' % _service_id(pl, host),
                 {'status': status}, microversion='2.53')


def _unshelve_with_cmp4_disabled(pl, name):
    """A server booted onto cmp-5 (az2) with no AZ named, shelved (Nova
    offloads it at once by default) and unshelved with no AZ while cmp-4
    is disabled: az2's only host is then cmp-5, all but full. The server
    once ACTIVE again."""
    server = boot(pl, name, '--host', 'cmp-5')
    assert server['OS-EXT-AZ:availability_zone'] == 'az2'
    pl.openstack('server', 'shelve', server['id'])
    pl.wait_server(server['id'], 'SHELVED_OFFLOADED')
    _set_service(pl, 'cmp-4', 'disabled')
    try:
        pl.openstack('--os-compute-api-version', '2.95', 'server',
                     'unshelve', server['id'])
        return pl.wait_server(server['id'])
    finally:
        _set_service(pl, 'cmp-4', 'enabled')


def test_an_unshelve_without_an_az_stays_in_the_instances_az(plane, mover):
    """The shim tells an unshelve by its instance (SHELVED_OFFLOADED in
    its cell) and sends the AZ it ran in: the server comes back on cmp-5,
    az2's one enabled host. The control (below, stock Nova) puts it in
    another AZ."""
    pl, st = plane
    push_steal(st)
    back = _unshelve_with_cmp4_disabled(pl, 'shelvee')
    assert host_of(back) == 'cmp-5', host_of(back)
    # Steward was asked about an unshelve, with the instance's AZ.
    asked = [line for line in st.log_text().splitlines()
             if back['id'] in line and 'operation="unshelve"' in line]
    assert asked, st.log_text()[-3000:]


def test_control_an_unshelve_without_the_shim_leaves_the_az(plane, mover):
    """Stock Nova: the same unshelve lands on the emptiest host of any AZ
    (cmp-5 is all but full), not in az2."""
    pl, st = plane
    pl.remove_shim()
    try:
        back = _unshelve_with_cmp4_disabled(pl, 'ctl-shelvee')
        assert back['OS-EXT-AZ:availability_zone'] != 'az2', host_of(back)
    finally:
        pl.use_steward(st)


# -- the controls ------------------------------------------------------------

def test_controls_without_the_shim(plane, mover):
    """The same calls with the shim removed from nova-scheduler: stock Nova
    does what the tests above check steward prevents. Only the mover
    (cmp-4) and the huge filler (cmp-5) run when it starts."""
    pl, st = plane
    pl.remove_shim()
    try:
        # Noisy host: with cmp-2 and cmp-3 taken, Nova's RAM weigher picks
        # the emptiest host of az1, the noisy one.
        hosts = [host_of(boot(pl, 'ctl-noisy-%d' % i, '--host', h))
                 for i, h in enumerate(('cmp-2', 'cmp-3'))]
        assert hosts == ['cmp-2', 'cmp-3']
        assert host_of(boot(pl, 'ctl-noisy-2', '--availability-zone',
                            'az1')) == NOISY
        # Role cap: a third web on the one az3 host.
        for i in range(3):
            assert host_of(boot(pl, 'ctl-cap-%d' % i, '--availability-zone',
                                'az3', *WEB)) == 'cmp-6'
        # A live migration without host leaves az2: cmp-5 is all but full,
        # every other host is far lighter.
        mig, moved = pl.live_migrate(mover)
        assert mig['status'] == 'completed', mig
        assert moved['OS-EXT-AZ:availability_zone'] != 'az2', (
            host_of(moved), mig)
        _back_to_cmp4(pl, mover)
        # An explicit cross-AZ host is honoured.
        mig, moved = pl.live_migrate(mover, 'cmp-2')
        assert mig['status'] == 'completed', mig
        assert host_of(moved) == 'cmp-2'
    finally:
        pl.use_steward(st)
