"""Functional tests against real OpenStack peers started by the harness.

tox puts tox-compat/ on PYTHONPATH; this file does too, so
`pytest tox-compat/tests_functional` works from a checkout whose venv has
the peers installed (see harness/venvs.py for per-peer venvs).
A failed test's report ends with the tail of every running peer's log.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(
    os.path.join(os.path.dirname(__file__), '..')))

import pytest  # noqa: E402

from harness.peers import active_clouds  # noqa: E402


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for cloud in active_clouds():
            report.sections.append(('peer logs: %s' % cloud.workdir,
                                    cloud.failure_report()))
