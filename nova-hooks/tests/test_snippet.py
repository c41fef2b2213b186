"""etc/nova.conf.steward-snippet, read by oslo.config as nova-scheduler
reads nova.conf, gives Nova's pipeline with the steward classes last."""

import os

import pytest

from harness import nova_scheduler as ns

SNIPPET = os.path.join(os.path.dirname(__file__), '..', '..', 'etc',
                       'nova.conf.steward-snippet')


@pytest.fixture
def parsed_snippet():
    ns.CONF(['--config-file', SNIPPET], project='nova',
            default_config_files=[])
    try:
        yield ns.CONF
    finally:
        # Back to defaults for the other tests (options stay registered).
        ns.CONF.clear()


def test_snippet_builds_nova_default_pipeline_plus_steward(parsed_snippet):
    # Nova 34's own default, from the option's definition.
    enabled_default = ns.CONF._get_opt_info(
        'enabled_filters', 'filter_scheduler')['opt'].default
    sched = ns.NovaScheduler()
    assert [type(f).__name__ for f in sched.filters] == (
        list(enabled_default) + ['StewardFilter'])
    names = [type(w).__name__ for w in sched.weighers]
    assert names[-1] == 'StewardWeigher' and len(names) == 14
    steward = parsed_snippet.steward
    assert steward.endpoint == 'http://127.0.0.1:8790'
    assert steward.fail_open is True and steward.timeout == 0.5
    assert steward.token_file == '/etc/nova/steward.token'
