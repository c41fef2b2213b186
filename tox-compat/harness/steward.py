"""Start a real steward binary with a config written for the test.

    with start_steward(tmp_path, profiles={...}) as st:
        st.push_telemetry(hosts=[{'host': 'cmp-a1', 'az': 'az1'}])
        status, answer, headers = st.post('/v1/filter', body)

The binary is $STEWARD_BIN, else <repo>/target/debug/steward.
"""

import os
import secrets

from harness import rest
from harness import tomlw
from harness.ports import free_port
from harness.process import ManagedProcess
from harness.process import PeerStartError

REPO_ROOT = os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..'))
ROLES = ('reader', 'telemetry', 'admin')


def default_binary():
    return os.environ.get('STEWARD_BIN') or os.path.join(
        REPO_ROOT, 'target', 'debug', 'steward')


class Steward:
    """A running steward: its URL, one token per role, its log."""

    def __init__(self, process, url, tokens, workdir, config_path):
        self.process = process
        self.url = url
        self.tokens = tokens
        self.workdir = workdir
        self.config_path = config_path

    def token_file(self, role='reader'):
        """A file holding only the `role` token, as [steward] token_file
        of nova.conf expects."""
        path = os.path.join(self.workdir, '%s.token' % role)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(self.tokens[role] + '\n')
        return path

    def request(self, method, path, body=None, role='reader', headers=None,
                timeout=10.0):
        """(status, decoded JSON or raw text, headers); never raises on
        an HTTP error status, so tests can assert on it."""
        hdrs = {}
        if role and self.tokens.get(role):
            hdrs['Authorization'] = 'Bearer ' + self.tokens[role]
        hdrs.update(headers or {})
        r = rest.request(method, self.url + path, body=body, headers=hdrs,
                         timeout=timeout)
        return r.status, r.body, r.headers

    def post(self, path, body, role='reader', headers=None):
        return self.request('POST', path, body, role, headers)

    def push_telemetry(self, hosts=(), vms=()):
        """POST /v1/telemetry; raise with steward's answer unless 202."""
        status, answer, _ = self.post(
            '/v1/telemetry', {'hosts': list(hosts), 'vms': list(vms)},
            role='telemetry')
        if status != 202:
            raise AssertionError('steward refused the telemetry push: '
                                 'HTTP %s %r' % (status, answer))
        return answer

    def log_text(self):
        return self.process.log_text()

    def kill(self):
        """SIGKILL: steward gone without a goodbye."""
        if self.process.running():
            self.process.proc.kill()
            self.process.proc.wait(10)

    def restart(self, timeout=30.0):
        """Start it again with the same config (same port, database)."""
        self.process.stop()
        self.process.start()
        self.process.wait_http(self.url + '/healthz', timeout=timeout)
        return self

    def stop(self):
        return self.process.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def write_config(workdir, port, auth='static', profiles=None,
                 default_profile='default', server=None, telemetry=None,
                 extra=None):
    """Write steward.toml (and the token file); return (path, tokens)."""
    tokens = {}
    auth_section = {'strategy': auth}
    if auth == 'static':
        tokens = {r: '%s-%s' % (r, secrets.token_hex(12)) for r in ROLES}
        token_path = os.path.join(workdir, 'tokens')
        with open(token_path, 'w', encoding='utf-8') as f:
            for role, tok in tokens.items():
                f.write('%s %s\n' % (tok, role))
        auth_section['token_file'] = token_path
    config = {
        'server': dict({'listen': '127.0.0.1:%d' % port}, **(server or {})),
        'auth': auth_section,
        'database': {'url': 'sqlite://%s?mode=rwc' % os.path.join(
            workdir, 'steward.sqlite')},
        'telemetry': dict({'max_age_seconds': 300}, **(telemetry or {})),
        'scheduling': {'default_profile': default_profile},
    }
    if profiles:
        config['profiles'] = profiles
    config.update(extra or {})
    path = os.path.join(workdir, 'steward.toml')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(tomlw.dumps(config))
    return path, tokens


def start_steward(workdir, binary=None, env=None, start_timeout=30.0,
                  launcher=None, make=Steward, stop_failed=None, **config):
    """Start `steward serve` on a free port; keyword args go to
    write_config. Retries twice when another process took the port.
    `launcher(binary)` gives the program to run instead of the binary
    (e.g. a faketime wrapper), `make` builds the answer from
    (proc, url, tokens, workdir, path), and `stop_failed(proc)` stops a
    start that did not answer."""
    workdir = os.path.abspath(str(workdir))
    os.makedirs(workdir, exist_ok=True)
    binary = binary or default_binary()
    if not os.access(binary, os.X_OK):
        raise PeerStartError(
            'no steward binary at %s: build it (cargo build) or set '
            'STEWARD_BIN' % binary)
    program = launcher(binary) if launcher else binary
    attempts = 3
    for attempt in range(1, attempts + 1):
        port = free_port()
        path, tokens = write_config(workdir, port, **config)
        proc = ManagedProcess('steward', [program, 'serve', '--config', path],
                              workdir, env=env).start()
        url = 'http://127.0.0.1:%d' % port
        try:
            proc.wait_http(url + '/healthz', timeout=start_timeout)
            return make(proc, url, tokens, workdir, path)
        except PeerStartError:
            (stop_failed or ManagedProcess.stop)(proc)
            # Another process may have taken the port since free_port().
            if attempt == attempts or 'in use' not in proc.log_text().lower():
                raise
