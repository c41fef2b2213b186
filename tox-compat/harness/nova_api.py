"""Start the real Nova compute API 34.0.0 on per-test MariaDB databases
and seed it with Nova's own objects.

    nova = start_nova_api(workdir, placement=pl)            # no authtoken
    nova = start_nova_api(workdir, placement=pl, keystone=ks)
    seeded = nova.seed({'hosts': [...], 'servers': [...]})
    status, body = nova.get('/os-hypervisors/detail', microversion='2.87')

Databases: steward_test_<random>_{api,cell0,cell1}, created for the
server and dropped at stop. The schema comes from nova-manage's own
commands (api_db sync, cell_v2 map_cell0, cell_v2 create_cell, db sync).
There is no compute, conductor or scheduler: what they would write is
seeded with Nova's objects by nova_seed.py in Nova's venv (see its SEED
FORMAT). Neutron is a loopback stub that knows no ports.

Without Keystone the authtoken filter is taken out of the v2.1 pipelines
and requests carry X-User-Id, X-Project-Id and X-Roles (real policy still
applies). With Keystone, authtoken validates real tokens and the harness
logs in as the admin of project `admin`.
"""

import concurrent.futures
import glob
import json
import os
import re
import time

from harness import cache
from harness import mariadb
from harness import rest
from harness.commands import run_tool
from harness.neutron_stub import NeutronStub
from harness.process import ManagedProcess
from harness.process import PeerStartError
from harness.venvs import peer_bin
from harness.venvs import peer_env
from harness.venvs import venv_for
from harness.wsgi import start_wsgi

MICROVERSION = '2.104'  # Nova 34's maximum
# The last microversion whose /os-hypervisors/detail carries vcpus,
# memory_mb and local_gb (2.88 dropped them).
HYPERVISOR_SIZES_MICROVERSION = '2.87'
ADMIN_PROJECT = 'a0a0a0a0a0a04a0a8a0a0a0a0a0a0a0a'
ADMIN_USER = 'b0b0b0b0b0b04b0b8b0b0b0b0b0b0b0b'
CELL0_UUID = '00000000-0000-0000-0000-000000000000'
SEEDER = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                      'nova_seed.py')
INSPECTOR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         'nova_inspect.py')


class NovaApi:
    def __init__(self, process, url, workdir, conf_path, databases,
                 neutron, keystone, venv, env):
        self.process = process
        self.url = url  # the compute endpoint: .../v2.1
        self.root_url = url.rsplit('/v2.1', 1)[0]
        self.workdir = workdir
        self.conf_path = conf_path
        self.databases = databases
        self.neutron = neutron
        self.keystone = keystone
        self.venv = venv
        self.env = env
        self.db_names = {}
        # Purpose -> the server holding that database, when not
        # `databases` (a cell added on a server of its own).
        self.cell_servers = {}
        self.seeded = None
        self._heartbeat = None
        self._token = None
        self._extra_databases = []

    # -- HTTP -----------------------------------------------------------

    def headers(self, microversion=MICROVERSION, roles=('admin', 'member',
                                                         'reader'),
                project_id=ADMIN_PROJECT, user_id=ADMIN_USER):
        """The headers of a request: without Keystone the identity that
        keystonemiddleware would have put there (X-User-Id, X-Project-Id,
        X-Roles); with Keystone a real admin token."""
        h = {'OpenStack-API-Version': 'compute %s' % microversion,
             'X-OpenStack-Nova-API-Version': microversion}
        if self.keystone is not None:
            if self._token is None:
                self._token = self.keystone.project_admin_token()
            h['X-Auth-Token'] = self._token
        else:
            h.update({'X-User-Id': user_id, 'X-Project-Id': project_id,
                      'X-Roles': ','.join(roles),
                      # Nova hands it to Neutron (the stub ignores it).
                      'X-Auth-Token': 'noauth'})
        return h

    def request(self, method, path, body=None, microversion=MICROVERSION,
                headers=None, **identity):
        """A Response; never raises on an HTTP status. `identity`:
        roles, project_id, user_id (noauth only)."""
        h = self.headers(microversion, **identity)
        h.update(headers or {})
        return rest.request(method, self.url + path, body, h)

    def call(self, method, path, body=None, expect=(200,),
             microversion=MICROVERSION, **identity):
        """The decoded answer; raises naming the request and the log."""
        return rest.call(method, self.url + path, body,
                         self.headers(microversion, **identity),
                         expect=expect, log=self.process.log_path).body

    def get(self, path, microversion=MICROVERSION, **identity):
        return self.call('GET', path, microversion=microversion, **identity)

    def database_url(self, purpose='api'):
        """mysql://user@host:port/<database> of Nova's `purpose` database
        (api, cell0 or cell1), for tests that read Nova's schema
        directly as steward's novadb adapter does."""
        name = self.db_names[purpose]
        server = self.cell_servers.get(purpose)
        url = server.url if server is not None else self.databases.url
        return '%s/%s' % (url.rstrip('/'), name)

    def cells(self):
        """Nova's cell mappings: [{'uuid': ..., 'name': ...}], cell0
        first."""
        rows = mariadb.execute(self.db_names['api'], 'SELECT uuid, name '
                               'FROM cell_mappings ORDER BY id',
                               url=self.databases.url)
        return [{'uuid': u, 'name': n} for u, n in rows]

    def add_cell(self, name, databases=None):
        """One more cell, as an operator adds it: a database on the
        server of `databases` (a mariadb.Databases; default the server of
        the others) with Nova's cell schema (`nova-manage db sync`), mapped
        with `nova-manage cell_v2 create_cell --name NAME
        --database_connection ...`. The database is dropped at stop()
        with `databases`. Returns the database name (also
        db_names[name])."""
        dbs = databases or self.databases
        db = dbs.create(name)
        url = dbs.connection(db)
        args = ['add-cell', name, url]
        if mariadb.have_client_tools():
            # The cached dump of what `nova-manage db sync` made for
            # cell1 (see _schema_template): the same schema in 1 s
            # instead of Nova's whole migration history.
            template = _schema_template(self.venv, self.databases.url)
            mariadb.load_database(db, os.path.join(template, 'cell1.sql'),
                                  dbs.url)
            args.append('--schema-loaded')
        self.nova_python(*args, log_name='nova-manage')
        self.db_names[name] = db
        if databases is not None:
            self.cell_servers[name] = databases
            self._extra_databases.append(databases)
        return db

    # -- seeding --------------------------------------------------------

    def nova_python(self, *args, log_name='nova-seed', timeout=300.0):
        """Run nova_seed.py with this server's nova.conf in Nova's venv."""
        return run_tool([peer_bin('nova', 'python', self.venv), SEEDER,
                         '--config-file', self.conf_path] + list(args),
                        self.workdir, log_name, env=self.env,
                        timeout=timeout)

    def seed(self, description, timeout=300.0):
        """Seed hosts, AZ aggregates, flavors, server groups and servers
        (nova_seed.py's SEED FORMAT); return the seeder's summary: uuids
        and ids by name. Call once per server (names are unique)."""
        path = os.path.join(self.workdir, 'seed-%d.json' % len(
            [f for f in os.listdir(self.workdir) if f.startswith('seed-')]))
        with open(path, 'w', encoding='utf-8') as f:
            json.dump(description, f, indent=1)
        out = self.nova_python('seed', path, timeout=timeout)
        try:
            self.seeded = json.loads(out)
        except ValueError as e:
            raise PeerStartError('nova_seed.py printed no JSON summary; '
                                 'see %s/nova-seed.log' % self.workdir) from e
        return self.seeded

    def inspect(self, *instance_uuids):
        """Each instance read back through Nova's own objects
        (Instance.get_by_uuid with its flavors, RequestSpec), with
        scheduler_utils.resources_from_flavor_and_bfv of every flavor
        copy: see nova_inspect.py."""
        out = run_tool([peer_bin('nova', 'python', self.venv), INSPECTOR,
                        '--config-file', self.conf_path] + list(
                            instance_uuids), self.workdir, 'nova-inspect',
                       env=self.env)
        return json.loads(out)

    def destroy(self, *instance_uuids):
        """Delete instances as nova-compute does (Instance.destroy(): soft
        delete of the instance and its instance_extra)."""
        run_tool([peer_bin('nova', 'python', self.venv), INSPECTOR,
                  '--config-file', self.conf_path, '--destroy'] + list(
                      instance_uuids), self.workdir, 'nova-inspect',
                 env=self.env)

    def heartbeat(self, hosts=()):
        """One report now for the seeded-up nova-compute services (or the
        named hosts): they count as up for another service_down_time."""
        args = ['heartbeat']
        if hosts:
            args += ['--hosts', ','.join(hosts)]
        self.nova_python(*args, log_name='nova-heartbeat')

    def keep_up(self, every=20.0, timeout=60.0):
        """Report for the seeded-up services every `every` seconds until
        stop(), as nova-compute's service group reporting would. Returns
        once the loop has made its first report: starting it (importing
        Nova) can take longer than a short service_down_time on a busy
        machine, and a loop that has not reported keeps nothing up."""
        if self._heartbeat is None or not self._heartbeat.running():
            self._heartbeat = ManagedProcess(
                'nova-heartbeat-loop',
                [peer_bin('nova', 'python', self.venv), SEEDER,
                 '--config-file', self.conf_path, 'heartbeat',
                 '--every', str(every)], self.workdir, env=self.env).start()
            deadline = time.monotonic() + timeout
            while 'services reported' not in self._heartbeat.log_text():
                if not self._heartbeat.running():
                    raise RuntimeError(
                        'the heartbeat loop exited before its first report:'
                        '\n' + self._heartbeat.log_tail())
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        'the heartbeat loop made no report in %ss:\n%s'
                        % (timeout, self._heartbeat.log_tail()))
                time.sleep(0.1)
        return self._heartbeat

    # -- lifecycle ------------------------------------------------------

    def log_text(self):
        return self.process.log_text()

    def stop(self):
        if self._heartbeat is not None:
            self._heartbeat.stop(grace=2)
        code = self.process.stop()
        self.neutron.stop()
        self.databases.drop_all()
        for dbs in self._extra_databases:
            try:
                dbs.drop_all()
            except Exception:  # a private server already gone
                pass
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def api_paste_ini(venv, keep_authtoken):
    """Nova's own api-paste.ini (from the wheel's etc/nova), with
    authtoken taken out of the v2.1 pipelines unless `keep_authtoken`."""
    path = os.path.join(venv, 'etc', 'nova', 'api-paste.ini')
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        raise PeerStartError('no api-paste.ini at %s: is nova installed in '
                             '%s?' % (path, venv)) from e
    if not keep_authtoken:
        text, n = re.subn(r'(?m)^(keystone = .*?) authtoken (.*)$',
                          r'\1 \2', text)
        if n != 2:
            raise PeerStartError('expected authtoken in the two v2.1 '
                                 'pipelines of %s, found it in %d' % (path, n))
    return text


def _conf(workdir, dbs, placement, neutron_url, keystone, nova_user,
          service_down_time, transport_url=None, glance_url=None):
    lines = [
        '[DEFAULT]',
        'transport_url = %s' % (transport_url or 'fake://'),
        'host = steward-nova-api',
        'state_path = %s' % os.path.join(workdir, 'state'),
        'debug = false',
        'service_down_time = %d' % service_down_time,
        # Nova raises service_down_time to 2.5 x report_interval when it
        # is not larger: keep a short down time short.
        'report_interval = %d' % max(1, min(10, service_down_time // 3)),
        '[api]',
        'auth_strategy = keystone',
        '[api_database]',
        'connection = %s' % dbs['api'],
        '[database]',
        'connection = %s' % dbs['cell1'],
        '[oslo_concurrency]',
        'lock_path = %s' % os.path.join(workdir, 'locks'),
        '[oslo_messaging_notifications]',
        'driver = noop',
    ]
    if keystone is not None:
        auth = [
            'auth_type = password',
            'auth_url = %s' % keystone.auth_url,
            'username = %s' % nova_user['name'],
            'password = %s' % nova_user['password'],
            'project_name = service',
            'user_domain_name = Default',
            'project_domain_name = Default',
            'region_name = RegionOne',
        ]
        lines += ['[keystone_authtoken]',
                  'www_authenticate_uri = %s' % keystone.auth_url] + auth
        placement_auth = auth
        neutron_auth = auth
    else:
        placement_auth = ['auth_type = admin_token', 'token = admin']
        neutron_auth = ['auth_type = admin_token', 'token = noauth']
    # Without a Placement, aggregate host changes through the API fail
    # (connection refused on a port nothing listens on); seeding does not
    # need it.
    placement_url = placement.url if placement else 'http://127.0.0.1:9'
    lines += ['[placement]'] + placement_auth + [
        'endpoint_override = %s' % placement_url]
    lines += ['[neutron]'] + neutron_auth + [
        'endpoint_override = %s' % neutron_url,
        'default_floating_pool = public']
    lines += ['[glance]', 'endpoint_override = %s' % (
        glance_url or 'http://127.0.0.1:9'),
              '[cinder]', 'os_region_name = RegionOne']
    return '\n'.join(lines) + '\n'


def _create_schemas(workdir, server_url, names, dbs, conf_path, venv, env):
    """Nova's API, cell0 and cell1 schemas with cell0 and cell1 mapped.

    nova-manage's migrations take 7-30 s on MariaDB (cell0 and cell1 each
    replay Nova's whole alembic history), so the first run dumps the
    result into the harness cache and later runs load the dump (about
    1 s) and point the two cell mappings at their own databases, which is
    what `nova-manage cell_v2 update_cell --database_connection` writes.
    """
    if not mariadb.have_client_tools():
        run_tool([peer_bin('nova', 'python', venv), SEEDER, '--config-file',
                  conf_path, 'setup', dbs['cell0']], workdir, 'nova-manage',
                 env=env)
        return
    template = _schema_template(venv, server_url)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for f in [pool.submit(mariadb.load_database, names[p],
                              os.path.join(template, p + '.sql'),
                              server_url) for p in names]:
            f.result()
    mariadb.execute(names['api'], 'UPDATE cell_mappings SET '
                    'database_connection = %s WHERE uuid = %s',
                    (dbs['cell0'], CELL0_UUID), server_url)
    mariadb.execute(names['api'], 'UPDATE cell_mappings SET '
                    'database_connection = %s WHERE name = %s',
                    (dbs['cell1'], 'cell1'), server_url)


def _nova_version(venv):
    found = glob.glob(os.path.join(venv, 'lib', 'python*', 'site-packages',
                                   'nova-*.dist-info'))
    return (os.path.basename(found[0])[len('nova-'):-len('.dist-info')]
            if found else 'unknown')


def _schema_template(venv, server_url):
    with open(SEEDER, encoding='utf-8') as f:
        seeder = f.read()
    key = 'nova-schema-%s-%s' % (_nova_version(venv), cache.digest(
        venv, mariadb.server_version(server_url), seeder))

    def build(scratch):
        with mariadb.Databases(server_url) as tmp:
            names = {p: tmp.create(p) for p in ('api', 'cell0', 'cell1')}
            dbs = {p: tmp.connection(n) for p, n in names.items()}
            conf_path = os.path.join(scratch, 'nova.conf')
            with open(conf_path, 'w', encoding='utf-8') as f:
                f.write('[DEFAULT]\ntransport_url = fake://\n'
                        '[api_database]\nconnection = %s\n'
                        '[database]\nconnection = %s\n'
                        % (dbs['api'], dbs['cell1']))
            run_tool([peer_bin('nova', 'python', venv), SEEDER,
                      '--config-file', conf_path, 'setup', dbs['cell0']],
                     scratch, 'nova-manage', env=peer_env('nova', venv))
            for purpose, name in names.items():
                mariadb.dump_database(name, os.path.join(
                    scratch, purpose + '.sql'), server_url)

    return cache.build_once(key, build)


def start_nova_api(workdir, placement=None, keystone=None, venv=None,
                   service_down_time=60, start_timeout=90.0, register=True,
                   transport_url=None, glance_url=None):
    """Create the databases, sync Nova's schemas, map cell0 and cell1 and
    serve osapi_compute. With a `keystone`: a `nova` service user for
    authtoken and Placement, and (if `register`) the compute service in
    the catalog. `transport_url` (default fake://, no RPC) is the message
    bus of nova.conf and of cell1's mapping; `glance_url` the image API
    (harness/nova_plane.py gives both)."""
    workdir = os.path.abspath(str(workdir))
    os.makedirs(os.path.join(workdir, 'locks'), exist_ok=True)
    venv = os.path.abspath(venv) if venv else venv_for('nova')
    databases = mariadb.Databases()
    neutron = NeutronStub().start()
    try:
        names = {p: databases.create(p) for p in ('api', 'cell0', 'cell1')}
        dbs = {p: databases.connection(n) for p, n in names.items()}
        nova_user = keystone.service_user('nova') if keystone else None
        conf_path = os.path.join(workdir, 'nova.conf')
        with open(conf_path, 'w', encoding='utf-8') as f:
            f.write(_conf(workdir, dbs, placement, neutron.url, keystone,
                          nova_user, service_down_time, transport_url,
                          glance_url))
        with open(os.path.join(workdir, 'api-paste.ini'), 'w',
                  encoding='utf-8') as f:
            f.write(api_paste_ini(venv, keep_authtoken=keystone is not None))
        env = peer_env('nova', venv, {'OS_NOVA_CONFIG_DIR': workdir})
        _create_schemas(workdir, databases.url, names, dbs, conf_path,
                        venv, env)
        if transport_url:
            # What `nova-manage cell_v2 update_cell --transport-url` writes:
            # the conductor reaches cell1's computes through it.
            mariadb.execute(names['api'], 'UPDATE cell_mappings SET '
                            'transport_url = %s WHERE name = %s',
                            (transport_url, 'cell1'), databases.url)
        proc, root = start_wsgi('nova-api', 'nova.wsgi.osapi_compute',
                                workdir, 'nova', probe_path='/', venv=venv,
                                env={'OS_NOVA_CONFIG_DIR': workdir},
                                start_timeout=start_timeout)
    except BaseException:
        neutron.stop()
        databases.drop_all()
        raise
    nova = NovaApi(proc, root + '/v2.1', workdir, conf_path, databases,
                   neutron, keystone, venv, env)
    nova.db_names = names
    if keystone is not None and register:
        keystone.register_service('compute', nova.url, name='nova')
    return nova
