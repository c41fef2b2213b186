"""Issue 7, hostile input: schemathesis against a live steward's
/openapi.json answers no request with a server error (5xx), and every
answer matches the document (status code, content type, body schema).

Steward runs with static tokens and an admin token (every role), so every
route is reached past authentication. Nothing it can write does harm: its
own SQLite database (telemetry, the rebalance journal), no cloud (the
rebalancer is off in dry-run) and no Nova API database (the repair routes
refuse with 400 before they touch anything).

The run is bounded (examples per operation, a fixed seed) so it adds well
under two minutes to CI; a failure prints schemathesis' own report with a
curl line per failing request.
"""

import os
import re
import subprocess
import sys

from harness.steward import start_steward

# How many generated cases per operation and phase; SCHEMATHESIS_EXAMPLES
# raises it for a longer local run.
EXAMPLES = int(os.environ.get('SCHEMATHESIS_EXAMPLES', '25'))
CHECKS = ('not_a_server_error,status_code_conformance,'
          'content_type_conformance,response_schema_conformance')


def schemathesis_bin():
    return os.path.join(os.path.dirname(sys.executable), 'schemathesis')


def test_no_server_error_and_every_answer_matches_the_document(tmp_path):
    with start_steward(tmp_path / 'steward') as st:
        cmd = [
            schemathesis_bin(), 'run', st.url + '/openapi.json',
            '--checks', CHECKS,
            # The document offers both schemes; steward reads X-Auth-Token
            # first, so both carry the token (else schemathesis fills one).
            '--header', 'Authorization: Bearer ' + st.tokens['admin'],
            '--header', 'X-Auth-Token: ' + st.tokens['admin'],
            '--max-examples', str(EXAMPLES),
            '--seed', '20261122',
            '--workers', '2',
            '--request-timeout', '10',
            '--suppress-health-check', 'all',
            '--no-color',
            '--report', 'junit',
            '--report-dir', str(tmp_path / 'report'),
        ]
        run = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True,
                             text=True, timeout=600)
        # Shown only on failure (in the assertion): its own summary line
        # would read as pytest's to scripts/test's count.
        out = run.stdout + run.stderr
        assert run.returncode == 0, (
            'schemathesis found problems (exit %d); its report:\n%s\n'
            'steward log tail:\n%s' % (run.returncode, out[-20000:],
                                       st.process.log_tail(40)))
        # It really tested: every operation of the document, many cases.
        selected = re.search(r'Selected: (\d+)/(\d+)', out)
        tested = re.search(r'Tested: (\d+)', out)
        cases = re.search(r'(\d+) generated, (\d+) passed', out)
        assert selected and tested and cases, out[-3000:]
        assert selected.group(1) == selected.group(2) == tested.group(1), (
            selected.group(0), tested.group(0))
        assert int(tested.group(1)) >= 17, tested.group(0)
        assert cases.group(1) == cases.group(2), cases.group(0)
        assert int(cases.group(1)) >= 10 * int(tested.group(1)), (
            cases.group(0))
        # Steward answered no 5xx to anything (its own count, not only
        # schemathesis' view of it).
        status, metrics, _ = st.request('GET', '/metrics')
        assert status == 200
        server_errors = [
            line for line in metrics.splitlines()
            if line.startswith('steward_http_requests_total')
            and 'status="5' in line]
        assert server_errors == [], server_errors
