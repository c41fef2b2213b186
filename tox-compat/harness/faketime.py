"""Run a program with its wall clock set to a chosen past moment: Debian's
`faketime` (libfaketime), the real clock advancing from there.

    at = last_utc_hour(19, margin=600)       # the latest 19:00 UTC past
    st = start_steward_at(at, workdir, extra={...})   # as start_steward
    ...
    st.stop()

Only the wall clock is faked (DONT_FAKE_MONOTONIC=1): timers, sleeps and
timeouts run on the real monotonic clock, so the program behaves normally
while time.time() / SystemTime::now() read `at` plus the seconds since it
started. Each start begins again at `at`.

`faketime` forks the program and waits for it: a signal to faketime alone
would orphan the program. The program runs in its own session (as every
ManagedProcess does), so stop_group() signals that whole process group.
"""

import os
import shlex
import shutil
import signal
import subprocess
import time

from harness.process import PeerStartError
from harness.steward import Steward
from harness.steward import start_steward

DEBIAN_PACKAGE = 'faketime'
HOUR = 3600
DAY = 86400


def ensure_installed():
    """The path of `faketime`, installed with apt-get when missing (as
    root, like harness.prometheus does for Prometheus)."""
    path = shutil.which('faketime')
    if path:
        return path
    if os.geteuid() != 0:
        raise PeerStartError(
            'faketime is not installed and the tests do not run as root: '
            'apt-get install -y faketime')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    for argv in (['apt-get', 'update', '-qq'],
                 ['apt-get', 'install', '-y', '-qq', DEBIAN_PACKAGE]):
        done = subprocess.run(argv, env=env, capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            raise PeerStartError('%s failed (exit %d): %s' % (
                ' '.join(argv), done.returncode,
                (done.stdout + done.stderr)[-3000:]))
    path = shutil.which('faketime')
    if not path:
        raise PeerStartError('apt-get installed %s but faketime is not on '
                             'PATH' % DEBIAN_PACKAGE)
    return path


def last_utc_hour(hour, now=None, margin=600):
    """The latest `hour`:00 UTC (epoch seconds) at least `margin` seconds
    before `now`, so that data up to `margin` seconds after it exists."""
    now = time.time() if now is None else now
    today = int(now) // DAY * DAY
    at = today + hour * HOUR
    while at > now - margin:
        at -= DAY
    return at


def faketime_spec(at):
    """faketime's -f start-at form: '@YYYY-MM-DD HH:MM:SS' (UTC)."""
    return '@' + time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(at))


def faketime_wrapper(workdir, binary, at, name='faketime-steward'):
    """An executable script in `workdir` that runs `binary` with its
    arguments under faketime, its wall clock starting at `at` (epoch
    seconds, read as UTC). Usable wherever a binary path is taken."""
    tool = ensure_installed()
    path = os.path.join(str(workdir), name)
    with open(path, 'w', encoding='utf-8') as f:
        f.write('#!/bin/sh\n'
                '# %s runs with its wall clock starting at %s UTC.\n'
                'export TZ=UTC DONT_FAKE_MONOTONIC=1\n'
                'exec %s -f %s %s "$@"\n' % (
                    os.path.basename(binary),
                    time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(at)),
                    shlex.quote(tool), shlex.quote(faketime_spec(at)),
                    shlex.quote(os.path.abspath(binary))))
    os.chmod(path, 0o755)
    return path


def _group_alive(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(process, grace=10.0, even_if_exited=False):
    """Stop a ManagedProcess and everything in its process group (it was
    started in a session of its own): SIGTERM, then SIGKILL after
    `grace` seconds. Idempotent; returns the direct child's exit code.

    faketime outlives its program (it waits for it): once faketime has
    exited, so has the group, and its id may be reused; only
    `even_if_exited` (right after someone else signalled faketime alone)
    signals the group then."""
    proc = process.proc
    if proc is not None and (even_if_exited or proc.poll() is None):
        pgid = proc.pid
        if _group_alive(pgid):
            os.killpg(pgid, signal.SIGTERM)
            deadline = time.monotonic() + grace
            while _group_alive(pgid) and time.monotonic() < deadline:
                proc.poll()  # reap the direct child, or it stays a zombie
                time.sleep(0.05)
            if _group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
    return process.stop(grace)


class FakeClockSteward(Steward):
    """A Steward whose wall clock started at `at`."""

    def __init__(self, *args, at=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.at = at

    def stop(self):
        return stop_group(self.process)


def start_steward_at(at, workdir, binary=None, env=None, start_timeout=30.0,
                     **config):
    """start_steward (harness.steward) with steward's wall clock starting
    at `at` (epoch seconds): `steward serve` runs under faketime. Keyword
    args go to write_config. The answer's stop() ends faketime and
    steward."""
    workdir = os.path.abspath(str(workdir))
    return start_steward(
        workdir, binary=binary, env=env, start_timeout=start_timeout,
        launcher=lambda b: faketime_wrapper(workdir, b, at),
        make=lambda *args: FakeClockSteward(*args, at=at),
        # wait_http may have signalled faketime alone already.
        stop_failed=lambda proc: stop_group(proc, even_if_exited=True),
        **config)
