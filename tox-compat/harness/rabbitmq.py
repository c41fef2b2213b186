"""RabbitMQ for Nova's RPC: the machine's broker or a private node, and one
vhost per plane.

    vhost = rabbitmq.Vhost().create()     # steward_test_<random>
    vhost.transport_url                   # rabbit://guest:guest@127.0.0.1:5672/<vhost>
    vhost.consumers('scheduler')          # how many consume that queue
    vhost.delete()

broker() is $STEWARD_TEST_RABBIT (a node name for rabbitmqctl -n, and
STEWARD_TEST_RABBIT_PORT its AMQP port), else the machine's broker on
127.0.0.1:5672 when rabbitmqctl reaches it, else a private node started
once per test run (Debian's rabbitmq-server with its own node name, AMQP
and distribution ports, mnesia and log directories; stopped at exit), as
mariadb.py does for MariaDB. Every plane makes its own vhost, so planes
and tests on one broker never see each other's queues.
"""

import atexit
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness.ports import free_port
from harness.process import PeerStartError

_broker = {}
RABBITMQCTL = 'rabbitmqctl'


def _port_answers(port):
    try:
        with socket.create_connection(('127.0.0.1', port), timeout=1):
            return True
    except OSError:
        return False


def _ctl(node, *args, timeout=60.0, ok=(0,)):
    """rabbitmqctl [-n NODE] ARGS: its stdout; raise naming the command."""
    argv = [RABBITMQCTL] + (['-n', node] if node else []) + list(args)
    if shutil.which(RABBITMQCTL) is None:
        raise PeerStartError(
            'no rabbitmqctl on PATH: install Debian\'s rabbitmq-server '
            '(apt-get install --no-install-recommends rabbitmq-server); '
            'scripts/test does')
    done = subprocess.run(argv, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    if done.returncode not in ok:
        raise PeerStartError('%s exited %d: %s' % (
            ' '.join(argv), done.returncode,
            (done.stdout + done.stderr).strip()[-2000:]))
    return done.stdout


def broker():
    """{'node': rabbitmqctl node name or None, 'port': AMQP port}."""
    if _broker:
        return _broker
    if os.environ.get('STEWARD_TEST_RABBIT'):
        _broker.update(node=os.environ['STEWARD_TEST_RABBIT'], port=int(
            os.environ.get('STEWARD_TEST_RABBIT_PORT', '5672')))
    elif _port_answers(5672) and _ctl_reaches(None):
        _broker.update(node=None, port=5672)
    else:
        _broker.update(_start_private())
    return _broker


def _ctl_reaches(node):
    try:
        _ctl(node, 'status', timeout=30)
        return True
    except (PeerStartError, subprocess.TimeoutExpired):
        return False


def _start_private():
    """A private rabbitmq-server node for this test run."""
    server = shutil.which('rabbitmq-server') or '/usr/sbin/rabbitmq-server'
    if not os.access(server, os.X_OK):
        raise PeerStartError(
            'no RabbitMQ at 127.0.0.1:5672 and no rabbitmq-server to start '
            'a private one: apt-get install --no-install-recommends '
            'rabbitmq-server')
    base = tempfile.mkdtemp(prefix='steward-rabbit-')
    port, dist = free_port(), free_port()
    node = 'steward%s@localhost' % secrets.token_hex(4)
    env = dict(os.environ, RABBITMQ_NODENAME=node,
               RABBITMQ_NODE_IP_ADDRESS='127.0.0.1',
               RABBITMQ_NODE_PORT=str(port), RABBITMQ_DIST_PORT=str(dist),
               RABBITMQ_MNESIA_BASE=os.path.join(base, 'mnesia'),
               RABBITMQ_LOG_BASE=os.path.join(base, 'log'),
               RABBITMQ_PID_FILE=os.path.join(base, 'pid'),
               RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(base, 'plugins'))
    with open(os.path.join(base, 'plugins'), 'w', encoding='utf-8') as f:
        f.write('[].\n')
    # Debian's wrapper runs the server (and rabbitmqctl) as `rabbitmq`.
    try:
        import pwd
        owner = pwd.getpwnam('rabbitmq')
        for path in (base, os.path.join(base, 'plugins')):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    except (KeyError, PermissionError):
        pass
    log = open(os.path.join(base, 'server.log'), 'ab')
    proc = subprocess.Popen([server], env=env, stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL,
                            start_new_session=True)
    atexit.register(_stop_private, proc, base)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise PeerStartError('the private rabbitmq-server exited %s; '
                                 'log %s/server.log' % (proc.returncode,
                                                        base))
        if _port_answers(port) and _ctl_reaches(node):
            return {'node': node, 'port': port}
        time.sleep(1)
    raise PeerStartError('the private rabbitmq-server did not answer on '
                         'port %d within 120 s; log %s/server.log'
                         % (port, base))


def _stop_private(proc, base):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)


class Vhost:
    """One vhost of the test broker, guest with every permission on it."""

    def __init__(self, name=None):
        self.name = name or 'steward_test_%s' % secrets.token_hex(4)
        self.node = None
        self.port = None

    @property
    def transport_url(self):
        return 'rabbit://guest:guest@127.0.0.1:%d/%s' % (self.port,
                                                         self.name)

    def create(self):
        b = broker()
        self.node, self.port = b['node'], b['port']
        _ctl(self.node, 'add_vhost', self.name)
        _ctl(self.node, 'set_permissions', '-p', self.name, 'guest', '.*',
             '.*', '.*')
        return self

    def queues(self):
        """{queue name: consumers}."""
        out = _ctl(self.node, 'list_queues', '-q', '-p', self.name, 'name',
                   'consumers', '--no-table-headers')
        found = {}
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                found[parts[0]] = int(parts[1])
        return found

    def consumers(self, queue):
        return self.queues().get(queue, 0)

    def delete(self):
        if self.node is None and self.port is None:
            return
        # 65: already gone.
        _ctl(self.node, 'delete_vhost', self.name, ok=(0, 65))
        self.node = self.port = None
