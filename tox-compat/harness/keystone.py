"""Start the real Keystone 30.0.0 and shape its identity data for a test.

    ks = start_keystone(workdir)
    user = ks.create_user('steward', project='service',
                          roles=('admin', 'service'))
    cred = ks.create_application_credential(user, roles=('reader',))
    ks.register_service('compute', nova_url, name='nova')
    path = ks.write_clouds_yaml({'steward': ks.password_cloud(user),
                                 'steward-appcred': ks.app_cred_cloud(cred)})

Keystone runs as its WSGI app under gunicorn on SQLite, with fernet and
credential keys under the workdir, an in-memory cache (without it one
token check runs hundreds of queries) and bcrypt at 4 rounds. Bootstrap
gives `admin` (project `admin`, role admin on the project and the system),
the roles reader, member, manager, admin, service, and the identity
service in the catalog. A `service` project is created for service users.
"""

import concurrent.futures
import glob
import json
import os
import secrets
import shutil

from harness import cache
from harness import rest
from harness.commands import run_tool
from harness.venvs import peer_bin
from harness.venvs import peer_env
from harness.venvs import venv_for
from harness.wsgi import start_wsgi

REGION = 'RegionOne'
DOMAIN = 'default'
_CONF = '''\
[DEFAULT]
debug = false
[database]
connection = sqlite:///{workdir}/keystone.sqlite
[fernet_tokens]
key_repository = {workdir}/fernet-keys
[fernet_receipts]
key_repository = {workdir}/fernet-keys
[credential]
key_repository = {workdir}/credential-keys
[cache]
enabled = true
backend = dogpile.cache.memory
[identity]
password_hash_rounds = 4
[token]
expiration = 86400
'''


class Keystone:
    """A running Keystone: its URLs, the admin login and helpers that
    create what a test needs through the real identity API."""

    def __init__(self, process, url, workdir, admin_password, venv):
        self.process = process
        self.url = url
        self.auth_url = url + '/v3'
        self.workdir = workdir
        self.admin_password = admin_password
        self.venv = venv
        self.admin = {'name': 'admin', 'password': admin_password,
                      'project_name': 'admin'}
        self._admin_token = None
        self._project_admin_token = None
        self._roles = {}
        self._projects = {}

    # -- logins ---------------------------------------------------------

    def login(self, username, password, project=None, system=False,
              domain='Default'):
        """A password login; (token, token body with its catalog)."""
        ident = {'methods': ['password'], 'password': {'user': {
            'name': username, 'password': password,
            'domain': {'name': domain}}}}
        auth = {'identity': ident}
        if system:
            auth['scope'] = {'system': {'all': True}}
        elif project:
            auth['scope'] = {'project': {'name': project,
                                         'domain': {'name': domain}}}
        return self._issue(auth)

    def login_app_credential(self, cred_id, secret):
        """An application-credential login; (token, token body)."""
        return self._issue({'identity': {
            'methods': ['application_credential'],
            'application_credential': {'id': cred_id, 'secret': secret}}})

    def _issue(self, auth):
        resp = rest.call('POST', self.auth_url + '/auth/tokens',
                         {'auth': auth}, expect=201,
                         log=self.process.log_path)
        return resp.headers['X-Subject-Token'], resp.body['token']

    def admin_token(self):
        """A system-scoped admin token (cached), for identity admin work."""
        if self._admin_token is None:
            self._admin_token, _ = self.login(
                'admin', self.admin_password, system=True)
        return self._admin_token

    def project_admin_token(self):
        """A token of `admin` scoped to project `admin` (cached): what
        Nova's and Placement's project-scoped admin policies accept."""
        if self._project_admin_token is None:
            self._project_admin_token, _ = self.login(
                'admin', self.admin_password, project='admin')
        return self._project_admin_token

    def api(self, method, path, body=None, expect=(200,), token=None):
        """Call the identity API as the admin; the decoded answer."""
        return rest.call(method, self.auth_url + path, body,
                         {'X-Auth-Token': token or self.admin_token()},
                         expect=expect, log=self.process.log_path).body

    # -- identity -------------------------------------------------------

    def role_id(self, name):
        if name not in self._roles:
            roles = self.api('GET', '/roles?name=%s' % name)['roles']
            if not roles:
                self._roles[name] = self.api(
                    'POST', '/roles', {'role': {'name': name}},
                    expect=201)['role']['id']
            else:
                self._roles[name] = roles[0]['id']
        return self._roles[name]

    def create_project(self, name, description=''):
        """The id of project `name` in the default domain (created once)."""
        if name not in self._projects:
            found = self.api('GET', '/projects?name=%s&domain_id=%s'
                             % (name, DOMAIN))['projects']
            if found:
                self._projects[name] = found[0]['id']
            else:
                self._projects[name] = self.api('POST', '/projects', {
                    'project': {'name': name, 'domain_id': DOMAIN,
                                'description': description}},
                    expect=201)['project']['id']
        return self._projects[name]

    def create_user(self, name, password=None, project='demo',
                    roles=('reader',)):
        """Create user `name` with `roles` on `project` (created if
        needed); a dict with id, name, password, project_id,
        project_name, roles."""
        password = password or secrets.token_urlsafe(12)
        project_id = self.create_project(project)
        user = self.api('POST', '/users', {'user': {
            'name': name, 'password': password, 'domain_id': DOMAIN,
            'default_project_id': project_id}}, expect=201)['user']
        for role in roles:
            self.grant(user['id'], project_id, role)
        return {'id': user['id'], 'name': name, 'password': password,
                'project_id': project_id, 'project_name': project,
                'roles': list(roles)}

    def grant(self, user_id, project_id, role):
        self.api('PUT', '/projects/%s/users/%s/roles/%s' % (
            project_id, user_id, self.role_id(role)), expect=(204,))

    def service_user(self, name):
        """A service user as deployments make them: project `service`,
        roles admin and service (keystonemiddleware validates tokens
        with it; Nova talks to Placement with it)."""
        return self.create_user(name, project='service',
                                roles=('admin', 'service'))

    def create_application_credential(self, user, name=None, roles=None,
                                      expires_at=None):
        """An application credential of `user` (a create_user dict), made
        with the user's own token as Keystone requires; `roles` limits it
        to a subset of the user's roles. A dict with id, secret, name."""
        token, _ = self.login(user['name'], user['password'],
                              project=user['project_name'])
        body = {'name': name or 'steward-%s' % secrets.token_hex(3)}
        if roles:
            body['roles'] = [{'name': r} for r in roles]
        if expires_at:
            body['expires_at'] = expires_at
        cred = self.api('POST', '/users/%s/application_credentials'
                        % user['id'], {'application_credential': body},
                        expect=201, token=token)['application_credential']
        return {'id': cred['id'], 'secret': cred['secret'],
                'name': cred['name'], 'user': user}

    # -- catalog --------------------------------------------------------

    def register_service(self, service_type, url, name=None,
                         interfaces=('public', 'internal', 'admin'),
                         region=REGION):
        """Add a service of `service_type` (compute, placement,
        scheduler-steward, ...) with one endpoint per interface at `url`
        (a string, or a dict interface -> url). Returns the service id."""
        svc = self.api('POST', '/services', {'service': {
            'type': service_type, 'name': name or service_type,
            'enabled': True}}, expect=201)['service']
        urls = url if isinstance(url, dict) else dict.fromkeys(interfaces, url)
        for interface, u in urls.items():
            self.api('POST', '/endpoints', {'endpoint': {
                'service_id': svc['id'], 'interface': interface, 'url': u,
                'region_id': region, 'enabled': True}}, expect=201)
        return svc['id']

    # -- clouds.yaml ----------------------------------------------------

    def password_cloud(self, user, interface='public'):
        """A clouds.yaml entry logging `user` in with its password."""
        return {'auth': {
            'auth_url': self.auth_url, 'username': user['name'],
            'password': user['password'],
            'project_name': user['project_name'],
            'user_domain_name': 'Default',
            'project_domain_name': 'Default'},
            'region_name': REGION, 'interface': interface,
            'identity_api_version': 3}

    def app_cred_cloud(self, cred, interface='public'):
        """A clouds.yaml entry logging in with an application credential."""
        return {'auth_type': 'v3applicationcredential', 'auth': {
            'auth_url': self.auth_url,
            'application_credential_id': cred['id'],
            'application_credential_secret': cred['secret']},
            'region_name': REGION, 'interface': interface,
            'identity_api_version': 3}

    def write_clouds_yaml(self, clouds, path=None):
        """Write {'clouds': clouds} to `path` (default
        <workdir>/clouds.yaml); return the path."""
        path = path or os.path.join(self.workdir, 'clouds.yaml')
        doc = {'clouds': clouds}
        try:
            import yaml
            text = yaml.safe_dump(doc, default_flow_style=False)
        except ImportError:
            text = json.dumps(doc, indent=2)  # JSON is YAML too
        with open(path, 'w', encoding='utf-8') as f:
            f.write(text)
        os.chmod(path, 0o600)
        return path

    def openstack(self, *args, cloud, clouds_yaml=None, venv=None,
                  timeout=120.0):
        """Run the real `openstack` CLI against this Keystone through
        OS_CLIENT_CONFIG_FILE; its stdout (raises on a non-zero exit)."""
        clouds_yaml = clouds_yaml or os.path.join(self.workdir,
                                                  'clouds.yaml')
        env = peer_env('osc', venv, {'OS_CLIENT_CONFIG_FILE': clouds_yaml})
        for key in [k for k in env if k.startswith('OS_') and k not in (
                'OS_CLIENT_CONFIG_FILE', 'OS_NOVA_DISABLE_EVENTLET_PATCHING')]:
            del env[key]
        return run_tool([peer_bin('osc', 'openstack', venv),
                         '--os-cloud', cloud] + list(args),
                        self.workdir, 'openstack-cli', env=env,
                        timeout=timeout)

    def log_text(self):
        return self.process.log_text()

    def stop(self):
        return self.process.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_keystone(workdir, venv=None, start_timeout=60.0):
    """Start a bootstrapped Keystone under `workdir` (a copy of the
    cached template, see _template) and put the identity service with
    this server's URL in the catalog."""
    workdir = os.path.abspath(str(workdir))
    os.makedirs(workdir, exist_ok=True)
    template = _template(venv)
    for d in ('fernet-keys', 'credential-keys'):
        shutil.copytree(os.path.join(template, d), os.path.join(workdir, d),
                        dirs_exist_ok=True)
    shutil.copy(os.path.join(template, 'keystone.sqlite'), workdir)
    with open(os.path.join(template, 'admin-password'),
              encoding='utf-8') as f:
        admin_password = f.read().strip()
    _write_conf(workdir)
    proc, url = start_wsgi('keystone', 'keystone.wsgi.api', workdir,
                           'keystone', probe_path='/v3', env={
                               'OS_KEYSTONE_CONFIG_DIR': workdir},
                           venv=venv, start_timeout=start_timeout)
    try:
        ks = Keystone(proc, url, workdir, admin_password, venv)
        ks.register_service('identity', url + '/v3/', name='keystone')
        ks.create_project('service', 'service users')
    except BaseException:
        proc.stop()
        raise
    return ks


def _write_conf(workdir):
    with open(os.path.join(workdir, 'keystone.conf'), 'w',
              encoding='utf-8') as f:
        f.write(_CONF.format(workdir=workdir))


def _keystone_version(venv):
    site = glob.glob(os.path.join(venv, 'lib', 'python*', 'site-packages',
                                  'keystone-*.dist-info'))
    return os.path.basename(site[0])[len('keystone-'):-len('.dist-info')] \
        if site else 'unknown'


def _template(venv):
    """A directory holding a synced, bootstrapped keystone.sqlite and its
    fernet and credential keys, built once per Keystone version and
    config and kept in the harness cache (see harness.cache): db_sync,
    key setup and bootstrap take 10-18 s, a copy takes milliseconds.

    Bootstrap runs without URLs: each server adds its own identity
    endpoints once it knows its port."""
    venv = os.path.abspath(venv) if venv else venv_for('keystone')
    key = 'keystone-%s-%s' % (_keystone_version(venv), cache.digest(
        _CONF, venv))
    return cache.build_once(key, lambda d: _build_template(d, venv))


def _build_template(workdir, venv):
    _write_conf(workdir)
    for d in ('fernet-keys', 'credential-keys'):
        os.makedirs(os.path.join(workdir, d), mode=0o700, exist_ok=True)
    env = peer_env('keystone', venv, {'OS_KEYSTONE_CONFIG_DIR': workdir})
    manage = [peer_bin('keystone', 'keystone-manage', venv),
              '--config-file', os.path.join(workdir, 'keystone.conf')]
    owner = ['--keystone-user', str(os.getuid()),
             '--keystone-group', str(os.getgid())]
    # The key setups need no database: run them beside db_sync.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        keys = pool.submit(lambda: [
            run_tool(manage + [cmd] + owner, workdir, 'keystone-manage-keys',
                     env) for cmd in ('fernet_setup', 'credential_setup')])
        run_tool(manage + ['db_sync'], workdir, 'keystone-manage', env)
        keys.result()
    admin_password = secrets.token_urlsafe(12)
    run_tool(manage + [
        'bootstrap', '--bootstrap-password', admin_password,
        '--bootstrap-username', 'admin',
        '--bootstrap-project-name', 'admin',
        '--bootstrap-role-name', 'admin',
        '--bootstrap-region-id', REGION],
        workdir, 'keystone-manage', env)
    with open(os.path.join(workdir, 'admin-password'), 'w',
              encoding='utf-8') as f:
        f.write(admin_password + '\n')


