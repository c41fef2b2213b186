"""A MariaDB server for the tests and per-test databases on it.

server_url() is $STEWARD_TEST_MYSQL_URL, else the machine's server on
127.0.0.1:3306 (root, no password) when it answers, else a private server
started once per test run by scripts/mariadb-private.sh (own datadir,
socket and free port; stopped at exit). Every test creates its own
databases `steward_test_<random>...` and drops them, so tests can run in
parallel on one server.
"""

import atexit
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse

from harness.process import PeerStartError

REPO_ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..'))
_server = {}


def _parse(url):
    u = urllib.parse.urlsplit(url)
    return {'host': u.hostname or '127.0.0.1', 'port': u.port or 3306,
            'user': urllib.parse.unquote(u.username or 'root'),
            'password': urllib.parse.unquote(u.password or '')}


def connect(url, database=None):
    """A PyMySQL connection to the server at `url` (mysql://user@host:port)."""
    try:
        import pymysql
    except ImportError as e:
        raise PeerStartError(
            'PyMySQL is not installed in %s: add PyMySQL to the test venv'
            % sys.prefix) from e
    return pymysql.connect(database=database, connect_timeout=5,
                           autocommit=True, **_parse(url))


def _answers(url):
    try:
        connect(url).close()
        return True
    except Exception:  # any failure means "not usable"
        return False


def server_url():
    """mysql://root@127.0.0.1:PORT of a server the tests may use."""
    if 'url' in _server:
        return _server['url']
    url = os.environ.get('STEWARD_TEST_MYSQL_URL')
    if url:
        if not _answers(url):
            raise PeerStartError(
                'STEWARD_TEST_MYSQL_URL=%s does not accept a login' % url)
    elif _answers('mysql://root@127.0.0.1:3306'):
        url = 'mysql://root@127.0.0.1:3306'
    else:
        url = _start_private()
    _server['url'] = url
    return url


def _run_private_script(directory, port=None, timeout=300):
    """Run scripts/mariadb-private.sh DIRECTORY [PORT]: (url, None) once
    the server accepts a login, else (None, "exit N: <its stderr>")."""
    script = os.path.join(REPO_ROOT, 'scripts', 'mariadb-private.sh')
    args = ['bash', script, directory] + ([str(port)] if port else [])
    out_path = os.path.join(directory, 'start.out')
    err_path = os.path.join(directory, 'start.err')
    # Files, not pipes: the script's background subshell keeps its
    # stdout open for as long as the server runs, so reading a pipe to
    # EOF would wait for the server to stop.
    with open(out_path, 'w') as out, open(err_path, 'w') as err:
        code = subprocess.run(args, stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL,
                              timeout=timeout).returncode
    with open(out_path) as f:
        lines = f.read().strip().splitlines()
    if code != 0 or not lines:
        with open(err_path) as f:
            return None, 'exit %d: %s' % (code, f.read().strip()[-2000:])
    return lines[-1], None


def _start_private():
    base = tempfile.mkdtemp(prefix='steward-mariadb-')
    url, error = _run_private_script(base)
    if error:
        raise PeerStartError(
            'no MariaDB on 127.0.0.1:3306 and scripts/mariadb-private.sh %s '
            'failed (%s); see %s/error.log' % (base, error, base))
    atexit.register(_stop_private, os.path.join(base, 'mysqld.pid'))
    return url


class PrivateServer:
    """A MariaDB server of one test module's own (scripts/mariadb-private.sh:
    own datadir, socket and free port), which the test may stop and start
    again on the same port and datadir: a database restart under a running
    client, without touching the server other tests share.

        server = PrivateServer().start()   # .url: mysql://root@...
        server.stop(); server.start()      # same port, same data
        server.close()                     # stopped for good, data removed

    Its datadir is a new directory under the system's temporary folder:
    mariadbd runs as `mysql`, which cannot enter pytest's root-only
    tmp_path.
    """

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix='steward-mariadb-')
        self.url = None
        self.port = None
        self._registered = False

    @property
    def pid_file(self):
        return os.path.join(self.dir, 'mysqld.pid')

    def _pid(self):
        try:
            with open(self.pid_file, encoding='ascii') as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start(self, timeout=120):
        """Start the server (a new datadir and port the first time, the
        same ones after stop()); returns self once it accepts a login."""
        os.makedirs(self.dir, exist_ok=True)
        url, error = _run_private_script(self.dir, self.port, timeout)
        if error:
            raise PeerStartError(
                'private MariaDB in %s did not start (%s); see %s/error.log'
                % (self.dir, error, self.dir))
        self.url = url
        self.port = _parse(self.url)['port']
        if not self._registered:
            atexit.register(self.close)
            self._registered = True
        return self

    def stop(self, timeout=60):
        """SIGTERM the server and wait until it has exited (a clean
        shutdown: every client connection is cut)."""
        pid = self._pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        raise PeerStartError('private MariaDB (pid %d, %s) did not stop '
                             'within %ds' % (pid, self.dir, timeout))

    def close(self):
        try:
            self.stop()
        except PeerStartError:
            pid = self._pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self.dir, ignore_errors=True)


def _stop_private(pid_file):
    try:
        with open(pid_file, encoding='ascii') as f:
            os.kill(int(f.read().strip()), signal.SIGTERM)
    except (OSError, ValueError):
        pass


def sqlalchemy_url(database, url=None):
    """The oslo.db connection string for `database` on the server."""
    p = _parse(url or server_url())
    auth = urllib.parse.quote(p['user'], safe='')
    if p['password']:
        auth += ':' + urllib.parse.quote(p['password'], safe='')
    return 'mysql+pymysql://%s@%s:%d/%s?charset=utf8' % (
        auth, p['host'], p['port'], database)


def new_name(purpose=''):
    """steward_test_<random>[_<purpose>]: unique per call."""
    name = 'steward_test_' + secrets.token_hex(5)
    return name + ('_' + purpose if purpose else '')


def create_database(name=None, url=None):
    """Create database `name` (default: a new steward_test_<random>) and
    return its name."""
    name = name or new_name()
    conn = connect(url or server_url())
    try:
        with conn.cursor() as cur:
            cur.execute('CREATE DATABASE `%s` CHARACTER SET utf8mb4 '
                        'COLLATE utf8mb4_general_ci' % _ident(name))
    finally:
        conn.close()
    return name


def drop_database(name, url=None):
    conn = connect(url or server_url())
    try:
        with conn.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS `%s`' % _ident(name))
    finally:
        conn.close()


def _client_args(url):
    p = _parse(url)
    args = ['--protocol=tcp', '-h', p['host'], '-P', str(p['port']),
            '-u', p['user']]
    env = dict(os.environ)
    if p['password']:
        env['MYSQL_PWD'] = p['password']
    return args, env


def have_client_tools():
    return bool(shutil.which('mariadb') and shutil.which('mariadb-dump'))


def dump_database(name, path, url=None):
    """mariadb-dump of database `name` (schema and rows) into `path`."""
    args, env = _client_args(url or server_url())
    with open(path, 'wb') as out:
        done = subprocess.run(
            ['mariadb-dump'] + args + ['--skip-dump-date', '--skip-comments',
                                       '--single-transaction',
                                       _ident(name)],
            stdout=out, stderr=subprocess.PIPE, env=env, timeout=300)
    if done.returncode != 0:
        raise PeerStartError('mariadb-dump %s failed: %s' % (
            name, done.stderr.decode('utf-8', 'replace')[-2000:]))


def load_database(name, path, url=None):
    """Run the SQL file `path` (a dump) in database `name`."""
    args, env = _client_args(url or server_url())
    with open(path, 'rb') as src:
        done = subprocess.run(['mariadb'] + args + [_ident(name)],
                              stdin=src, stderr=subprocess.PIPE,
                              stdout=subprocess.DEVNULL, env=env,
                              timeout=300)
    if done.returncode != 0:
        raise PeerStartError('loading %s into %s failed: %s' % (
            path, name, done.stderr.decode('utf-8', 'replace')[-2000:]))


def execute(database, sql, params=(), url=None):
    """Run one statement in `database`; the rows it returns."""
    conn = connect(url or server_url(), database)
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def server_version(url=None):
    return execute(None, 'SELECT VERSION()', url=url)[0][0]


def _ident(name):
    if not name or not all(c.isalnum() or c == '_' for c in name):
        raise ValueError('not a safe database name: %r' % name)
    return name


class Databases:
    """Databases created for one test or fixture, dropped together."""

    def __init__(self, url=None):
        self.url = url or server_url()
        self.names = []

    def create(self, purpose=''):
        name = create_database(new_name(purpose), self.url)
        self.names.append(name)
        return name

    def connection(self, name):
        """oslo.db / SQLAlchemy URL of one of these databases."""
        return sqlalchemy_url(name, self.url)

    def drop_all(self):
        while self.names:
            drop_database(self.names.pop(), self.url)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.drop_all()
