"""Running `steward repair` against a Cloud, for the repair's functional
tests: the environment it runs with (the cloud's clouds.yaml, Nova's API
database, a SQLite journal of its own) and an apply interrupted mid-run
(a peer going away once the journal shows a first write).
"""

import os
import sqlite3
import subprocess
import time


def steward_env(cloud, workdir, database_url=None):
    """The environment of `steward repair ...` against `cloud`, with its
    journal at `database_url`, else in <workdir>/steward.sqlite."""
    env = {k: v for k, v in os.environ.items() if not k.startswith('OS_')}
    env.update({
        'OS_CLIENT_CONFIG_FILE': cloud.identity['clouds_yaml'],
        'NO_PROXY': '127.0.0.1,localhost', 'no_proxy': '127.0.0.1,localhost',
        'STEWARD_LOG': 'warn',
        'STEWARD__OPENSTACK__CLOUD': 'steward',
        'STEWARD__REPAIR__API_DATABASE': cloud.nova.database_url('api'),
        'STEWARD__DATABASE__URL': database_url or 'sqlite://%s?mode=rwc' % (
            os.path.join(workdir, 'steward.sqlite')),
    })
    return env


def first_rewrite_run(journal):
    """The id of the run whose journal (a SQLite file) shows an instance
    flavor rewritten, or None (none yet, or the file is busy)."""
    try:
        db = sqlite3.connect(journal, timeout=0.2)
        try:
            row = db.execute(
                "SELECT run_id FROM repair_journal WHERE state = 'done' AND "
                "action = 'rewrite_instance_flavor' LIMIT 1").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return row[0] if row else None


def apply_interrupted(argv, env, cwd, journal, interrupt, restore,
                      timeout=120):
    """Start `argv` (a repair apply); once its journal shows a first
    instance flavor rewritten, call `interrupt` (the peer goes away); let
    the apply end, then call `restore`. Returns (returncode, stdout, stderr);
    fails when the apply ended before it could be interrupted."""
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    interrupted = False
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if first_rewrite_run(journal):
                interrupt()
                interrupted = True
                break
            time.sleep(0.005)
        out, err = proc.communicate(timeout=180)
    finally:
        restore()
    assert interrupted, 'the apply ended before the peer could go away'
    return proc.returncode, out, err
