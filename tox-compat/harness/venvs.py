"""Where each peer's programs live: one shared venv or one venv per peer.

The default is the venv running the tests (the tox env, which installs
keystone, nova, placement and the openstack CLI together). A per-peer venv
wins when set: $STEWARD_KEYSTONE_VENV, $STEWARD_NOVA_VENV,
$STEWARD_PLACEMENT_VENV, $STEWARD_OSC_VENV, $STEWARD_IRONIC_VENV;
$STEWARD_PEERS_VENV sets the one venv all peers share.
"""

import os
import sys

from harness.process import PeerStartError

PEERS = ('keystone', 'nova', 'placement', 'osc', 'ironic')
# What each peer's venv must hold, to fail early with the pip line to run.
_PACKAGES = {
    'keystone': ('keystone-manage', 'keystone==30.0.0 gunicorn'),
    'nova': ('nova-manage', 'nova==34.0.0 gunicorn PyMySQL'),
    'placement': ('placement-manage',
                  'openstack-placement==16.0.0 gunicorn PyMySQL'),
    'osc': ('openstack', 'python-openstackclient osc-placement'),
    'ironic': ('ironic-dbsync', 'ironic==39.0.0 PyMySQL'),
}


def venv_for(peer):
    """The venv directory (holding bin/) that runs `peer`."""
    if peer not in PEERS:
        raise ValueError('unknown peer %r (one of %s)' % (peer, PEERS))
    for var in ('STEWARD_%s_VENV' % peer.upper(), 'STEWARD_PEERS_VENV'):
        if os.environ.get(var):
            return os.path.abspath(os.environ[var])
    return sys.prefix


def peer_bin(peer, program=None, venv=None):
    """The absolute path of `program` (default: the peer's manage tool,
    or 'python') in the peer's venv; raise naming the venv and the
    packages to install when it is missing."""
    venv = os.path.abspath(venv) if venv else venv_for(peer)
    program = program or _PACKAGES[peer][0]
    path = os.path.join(venv, 'bin', program)
    if not os.access(path, os.X_OK):
        raise PeerStartError(
            'no %s in %s: install the %s peer there (pip install -c '
            'tox-compat/peers-constraints.txt %s) or point '
            '$STEWARD_%s_VENV at a venv that has it'
            % (program, venv, peer, _PACKAGES[peer][1], peer.upper()))
    return path


def peer_env(peer, venv=None, extra=None):
    """The environment for a peer's processes: ours, with the venv's bin
    first on PATH, no proxy for loopback, and `extra` on top."""
    venv = os.path.abspath(venv) if venv else venv_for(peer)
    env = dict(os.environ)
    env['PATH'] = os.path.join(venv, 'bin') + os.pathsep + env.get('PATH', '')
    env['VIRTUAL_ENV'] = venv
    env['NO_PROXY'] = env['no_proxy'] = '127.0.0.1,localhost'
    env.pop('PYTHONHOME', None)
    env.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
    # eventlet's deprecation warning on every import is noise in logs.
    env.setdefault('PYTHONWARNINGS', 'ignore::DeprecationWarning')
    env.update(extra or {})
    return env
