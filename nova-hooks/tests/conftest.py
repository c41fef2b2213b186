"""Fixtures: a live steward, Nova's scheduler built from nova.conf flags.

The harness lives in tox-compat/; tox puts it on PYTHONPATH, and this file
does too so `pytest nova-hooks/tests` works from a checkout.
"""

import contextlib
import logging
import os
import sys

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
sys.path.insert(0, os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..', '..', 'tox-compat')))

import pytest  # noqa: E402

from harness import nova_scheduler as ns  # noqa: E402
from harness import start_steward  # noqa: E402
from harness.fault_server import FaultServer  # noqa: E402
from steward_nova import client  # noqa: E402
import steward_nova.conf  # noqa: E402, F401  (registers [steward])

STEWARD_FILTER = 'steward_nova.filters.StewardFilter'
STEWARD_WEIGHER = 'steward_nova.weighers.StewardWeigher'
# The filter's one round trip per request: the weights and the compact
# answer (docs/callout.md).
ROUND_TRIP = '/v1/filter?weigh=true&compact=true'

# The profiles the stories rely on, written out so a change of steward's
# built-in defaults cannot change what the tests mean.
PROFILES = {
    'default': {
        'description': 'AZ-correct, steal-averse, spread',
        'plugins': {
            'same_az': {},
            'steal': {'weight': 3.0, 'saturation': 0.25},
            'capacity_spread': {'weight': 1.0},
        },
    },
    'web': {
        'description': 'spread and steal-averse',
        'plugins': {
            'same_az': {},
            'steal': {'weight': 3.0, 'saturation': 0.25},
            'role_spread': {'weight': 2.0, 'max_per_host': 1,
                            'mode': 'hard'},
            'az_spread': {'weight': 1.0, 'max_skew': 1,
                          'when_unsatisfiable': 'ScheduleAnyway'},
            'capacity_spread': {'weight': 1.0},
        },
    },
}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the steward log to a failed test's report."""
    outcome = yield
    rep = outcome.get_result()
    if rep.failed:
        for name in ('steward', 'private_steward'):
            st = item.funcargs.get(name) if hasattr(item, 'funcargs') else None
            if st is not None:
                rep.sections.append(('%s log (tail)' % name,
                                     st.process.log_tail(60)))


@pytest.fixture(scope='session')
def steward(tmp_path_factory):
    """One steward for the session. Tests use host names of their own
    (prefix per story) so their telemetry pushes do not meet."""
    st = start_steward(tmp_path_factory.mktemp('steward'), profiles=PROFILES)
    yield st
    st.stop()


@pytest.fixture
def private_steward(tmp_path):
    """A steward the test may stop."""
    st = start_steward(tmp_path / 'steward', profiles=PROFILES)
    yield st
    st.stop()


@pytest.fixture
def fault_server():
    servers = []

    def make(mode, sleep=2.0):
        srv = FaultServer(mode, sleep=sleep).start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture(autouse=True)
def fresh_warnings():
    """Rate limiting is process-wide; each test starts with a clean slate."""
    client.WARNER.reset()
    yield
    client.WARNER.reset()


class NovaConfig:
    """Sets nova.conf options for one test and builds the scheduler from
    them, as nova-scheduler does at start."""

    def __init__(self, stack):
        self._stack = stack

    def scheduler(self, endpoint, token_file=None, filters=None,
                  weighers=None, **steward_opts):
        """`filters` and `weighers` default to Nova's own defaults with the
        steward classes appended: what etc/nova.conf.steward-snippet does.
        """
        defaults = ns.CONF.filter_scheduler
        enabled = (list(filters) if filters is not None else
                   list(defaults.enabled_filters) + ['StewardFilter'])
        weight_classes = (list(weighers) if weighers is not None else
                          list(defaults.weight_classes) + [STEWARD_WEIGHER])
        steward_opts.update(endpoint=endpoint, token_file=token_file)
        self._stack.enter_context(ns.nova_flags(
            filter_scheduler={
                'available_filters': ['nova.scheduler.filters.all_filters',
                                      STEWARD_FILTER],
                'enabled_filters': enabled,
                'weight_classes': weight_classes,
            },
            steward=steward_opts))
        return ns.NovaScheduler()


@pytest.fixture
def nova_conf():
    with contextlib.ExitStack() as stack:
        yield NovaConfig(stack)


@pytest.fixture
def shim_log(caplog):
    """Records of the shim's loggers, DEBUG and up."""
    caplog.set_level(logging.DEBUG, logger='steward_nova')
    return caplog


def names(hosts):
    return [h.host if hasattr(h, 'host') else h.obj.host for h in hosts]


def warnings_of(caplog):
    return [r for r in caplog.records
            if r.name.startswith('steward_nova')
            and r.levelno == logging.WARNING]
