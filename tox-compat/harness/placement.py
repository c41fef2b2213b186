"""Start the real Placement 16.0.0 and seed providers, inventories,
aggregates and allocations through its API.

    pl = start_placement(workdir)                  # noauth2, MariaDB
    pl = start_placement(workdir, keystone=ks)     # keystonemiddleware
    rp = pl.create_provider('cmp-a1', uuid=node_uuid)
    pl.set_inventory(rp, {'VCPU': {'total': 64, 'allocation_ratio': 4.0},
                          'MEMORY_MB': 262144, 'DISK_GB': 2000})
    pl.allocate(instance_uuid, {rp: {'VCPU': 2, 'MEMORY_MB': 4096}},
                project_id=..., user_id=...)

Requests go at microversion 1.39 unless told otherwise; allocations carry
`consumer_type` (required from 1.38). With noauth2 the token `admin`
stands for an admin; with Keystone the harness logs in as the admin of
project `admin` (Placement's policies are project-scoped).
"""

import os
import uuid as uuidlib

from harness import mariadb
from harness import rest
from harness.commands import run_tool
from harness.venvs import peer_bin
from harness.venvs import peer_env
from harness.wsgi import start_wsgi

MICROVERSION = '1.39'
# What nova-compute's libvirt driver reports when nothing overrides it.
_INVENTORY_DEFAULTS = {
    'VCPU': {'allocation_ratio': 4.0},
    'MEMORY_MB': {'allocation_ratio': 1.0, 'reserved': 512},
    'DISK_GB': {'allocation_ratio': 1.0},
}


class Placement:
    def __init__(self, process, url, workdir, db_url, databases=None,
                 keystone=None, service_user=None):
        self.process = process
        self.url = url
        self.workdir = workdir
        self.db_url = db_url
        self.databases = databases
        self.keystone = keystone
        self.service_user = service_user
        self._token = None

    # -- HTTP -----------------------------------------------------------

    def token(self):
        """The token an admin sends: `admin` under noauth2, else a real
        project-scoped admin token from the harness Keystone."""
        if self.keystone is None:
            return 'admin'
        if self._token is None:
            self._token = self.keystone.project_admin_token()
        return self._token

    def headers(self, microversion=MICROVERSION, roles=None):
        h = {'X-Auth-Token': self.token(),
             'OpenStack-API-Version': 'placement %s' % microversion}
        if roles and self.keystone is None:
            h['X-Roles'] = ','.join(roles)  # noauth2 only
        return h

    def request(self, method, path, body=None, microversion=MICROVERSION,
                headers=None, roles=None):
        """A Response; never raises on an HTTP status."""
        h = self.headers(microversion, roles)
        h.update(headers or {})
        return rest.request(method, self.url + path, body, h)

    def call(self, method, path, body=None, expect=(200,),
             microversion=MICROVERSION, roles=None):
        """The decoded answer; raises naming the request and the log."""
        return rest.call(method, self.url + path, body,
                         self.headers(microversion, roles), expect=expect,
                         log=self.process.log_path).body

    # -- seeding --------------------------------------------------------

    def create_provider(self, name, uuid=None, parent=None):
        """Create resource provider `name`; return its uuid."""
        uuid = uuid or str(uuidlib.uuid4())
        body = {'name': name, 'uuid': uuid}
        if parent:
            body['parent_provider_uuid'] = parent
        self.call('POST', '/resource_providers', body, expect=200)
        return uuid

    def generation(self, rp_uuid):
        return self.call('GET', '/resource_providers/%s' % rp_uuid)[
            'generation']

    def ensure_resource_class(self, name):
        """PUT /resource_classes/CUSTOM_X: 201 created, 204 existed."""
        self.call('PUT', '/resource_classes/%s' % name, expect=(201, 204))

    def set_inventory(self, rp_uuid, inventories):
        """Replace the provider's inventory. `inventories` maps a class to
        a total or to a dict of inventory fields; standard classes get
        nova-compute's usual allocation ratios. Custom classes are
        created first. Returns the new provider generation."""
        full = {}
        for rc, inv in inventories.items():
            inv = {'total': inv} if isinstance(inv, int) else dict(inv)
            if rc.startswith('CUSTOM_'):
                self.ensure_resource_class(rc)
            full[rc] = dict(_INVENTORY_DEFAULTS.get(rc, {}), **inv)
        return self.call('PUT', '/resource_providers/%s/inventories'
                         % rp_uuid, {
                             'resource_provider_generation':
                                 self.generation(rp_uuid),
                             'inventories': full})[
            'resource_provider_generation']

    def set_aggregates(self, rp_uuid, aggregates):
        """Replace the provider's aggregates (uuids)."""
        return self.call('PUT', '/resource_providers/%s/aggregates'
                         % rp_uuid, {
                             'aggregates': list(aggregates),
                             'resource_provider_generation':
                                 self.generation(rp_uuid)})

    def set_traits(self, rp_uuid, traits):
        for t in traits:
            if t.startswith('CUSTOM_'):
                self.call('PUT', '/traits/%s' % t, expect=(201, 204))
        return self.call('PUT', '/resource_providers/%s/traits' % rp_uuid, {
            'traits': list(traits),
            'resource_provider_generation': self.generation(rp_uuid)})

    def allocate(self, consumer_uuid, allocations, project_id, user_id,
                 consumer_type='INSTANCE', consumer_generation=None):
        """PUT /allocations/{consumer}: `allocations` maps provider uuid
        to {class: amount}. A new consumer has generation None."""
        self.call('PUT', '/allocations/%s' % consumer_uuid, {
            'allocations': {rp: {'resources': dict(res)}
                            for rp, res in allocations.items()},
            'project_id': project_id, 'user_id': user_id,
            'consumer_generation': consumer_generation,
            'consumer_type': consumer_type}, expect=204)

    # -- reading --------------------------------------------------------

    def providers(self, **query):
        q = '&'.join('%s=%s' % kv for kv in query.items())
        return self.call('GET', '/resource_providers' + (
            '?' + q if q else ''))['resource_providers']

    def inventories(self, rp_uuid):
        return self.call('GET', '/resource_providers/%s/inventories'
                         % rp_uuid)['inventories']

    def usages(self, rp_uuid):
        return self.call('GET', '/resource_providers/%s/usages'
                         % rp_uuid)['usages']

    def allocations(self, consumer_uuid):
        return self.call('GET', '/allocations/%s' % consumer_uuid)

    def openstack(self, *args, venv=None, microversion=MICROVERSION,
                  timeout=120.0):
        """Run the real `openstack` CLI (osc-placement) against this
        Placement: with noauth2 the admin_token recipe (token `admin`,
        the endpoint given), with Keystone a real token and the endpoint.
        Its stdout; raises on a non-zero exit."""
        env = peer_env('osc', venv)
        for key in [k for k in env if k.startswith('OS_')
                    and k != 'OS_NOVA_DISABLE_EVENTLET_PATCHING']:
            del env[key]
        argv = [peer_bin('osc', 'openstack', venv), '--os-auth-type',
                'admin_token', '--os-token', self.token(), '--os-endpoint',
                self.url, '--os-placement-api-version', microversion]
        return run_tool(argv + list(args), self.workdir, 'openstack-cli',
                        env=env, timeout=timeout)

    # -- lifecycle ------------------------------------------------------

    def log_text(self):
        return self.process.log_text()

    def stop(self):
        code = self.process.stop()
        if self.databases is not None:
            self.databases.drop_all()
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _conf(db_url, keystone, service_user):
    lines = ['[DEFAULT]', 'debug = false', '[placement_database]',
             'connection = %s' % db_url, '[api]']
    if keystone is None:
        lines.append('auth_strategy = noauth2')
    else:
        lines += [
            'auth_strategy = keystone',
            '[keystone_authtoken]',
            'www_authenticate_uri = %s' % keystone.auth_url,
            'auth_url = %s' % keystone.auth_url,
            'auth_type = password',
            'username = %s' % service_user['name'],
            'password = %s' % service_user['password'],
            'project_name = service',
            'user_domain_name = Default',
            'project_domain_name = Default',
            'region_name = RegionOne',
        ]
    return '\n'.join(lines) + '\n'


def start_placement(workdir, keystone=None, backend='mysql', db_url=None,
                    venv=None, start_timeout=60.0, register=True):
    """Create Placement's database, sync its schema and serve it.

    backend 'mysql': a new steward_test_<random>_placement database on
    the test MariaDB (dropped at stop); 'sqlite': a file in `workdir`;
    or pass `db_url` (an oslo.db URL) to use one you own. With a
    `keystone`, a `placement` service user is made for
    keystonemiddleware and, if `register`, the service is put in the
    catalog."""
    workdir = os.path.abspath(str(workdir))
    os.makedirs(workdir, exist_ok=True)
    databases = None
    if db_url is None:
        if backend == 'sqlite':
            db_url = 'sqlite:///%s' % os.path.join(workdir,
                                                   'placement.sqlite')
        elif backend == 'mysql':
            databases = mariadb.Databases()
            db_url = databases.connection(databases.create('placement'))
        else:
            raise ValueError('backend is mysql or sqlite, not %r' % backend)
    service_user = keystone.service_user('placement') if keystone else None
    conf_path = os.path.join(workdir, 'placement.conf')
    with open(conf_path, 'w', encoding='utf-8') as f:
        f.write(_conf(db_url, keystone, service_user))
    env = peer_env('placement', venv, {'OS_PLACEMENT_CONFIG_DIR': workdir})
    try:
        run_tool([peer_bin('placement', 'placement-manage', venv),
                  '--config-file', conf_path, 'db', 'sync'],
                 workdir, 'placement-manage', env)
        proc, url = start_wsgi('placement', 'placement.wsgi.api', workdir,
                               'placement', probe_path='/', venv=venv,
                               env={'OS_PLACEMENT_CONFIG_DIR': workdir},
                               start_timeout=start_timeout)
    except BaseException:
        if databases is not None:
            databases.drop_all()
        raise
    pl = Placement(proc, url, workdir, db_url, databases, keystone,
                   service_user)
    if keystone is not None and register:
        keystone.register_service('placement', url, name='placement')
    return pl
