"""Serve an OpenStack WSGI app (Keystone, Nova API, Placement) under
gunicorn on a free loopback port.

Keystone and Nova hand sys.argv to oslo.config, so under gunicorn every
worker would die on gunicorn's own flags: the app is imported through a
two-line shim module that empties sys.argv first.
"""

import os

from harness.ports import free_port
from harness.process import ManagedProcess
from harness.process import PeerStartError
from harness.venvs import peer_bin
from harness.venvs import peer_env

_SHIM = '''\
import sys
sys.argv = sys.argv[:1]
from %s import application  # noqa: E402,F401
'''


def start_wsgi(name, app_module, workdir, peer, probe_path='/',
               expect=200, env=None, venv=None, threads=8,
               start_timeout=60.0):
    """Start gunicorn serving `app_module`.application; return
    (ManagedProcess, url). Retries twice when another process took the
    port between free_port() and gunicorn's bind."""
    shim = '%s_wsgi_shim' % name.replace('-', '_')
    with open(os.path.join(workdir, shim + '.py'), 'w',
              encoding='utf-8') as f:
        f.write(_SHIM % app_module)
    gunicorn = peer_bin(peer, 'gunicorn', venv)
    for attempt in range(3):
        port = free_port()
        url = 'http://127.0.0.1:%d' % port
        argv = [gunicorn, '--no-control-socket',
                '--bind', '127.0.0.1:%d' % port,
                '--workers', '1', '--threads', str(threads),
                '--timeout', '300', '--graceful-timeout', '1',
                '--chdir', workdir, '--pythonpath', workdir,
                '--access-logfile', '-', '--name', name,
                shim + ':application']
        proc = ManagedProcess(name, argv, workdir,
                              env=peer_env(peer, venv, env)).start()
        try:
            proc.wait_http(url + probe_path, expect=expect,
                           timeout=start_timeout)
        except PeerStartError:
            proc.stop()
            if attempt < 2 and 'in use' in proc.log_text().lower():
                continue
            raise
        return proc, url
    raise AssertionError('unreachable')
