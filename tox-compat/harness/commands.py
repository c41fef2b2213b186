"""Run a peer's one-shot tool (keystone-manage, nova-manage, promtool...)
with its output kept in a log file under the peer's workdir."""

import os
import subprocess
import time

from harness.process import PeerStartError


def run_tool(argv, workdir, log_name, env=None, timeout=300.0, input=None,
             ok=(0,)):
    """Run `argv`; append its output to <workdir>/<log_name>.log and
    return its stdout text. Raise PeerStartError with the command, exit
    status and output tail unless the exit status is in `ok`."""
    log_path = os.path.join(workdir, '%s.log' % log_name)
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, cwd=workdir, env=env, input=input, capture_output=True,
            text=True, timeout=timeout, stdin=None if input is not None
            else subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        _append(log_path, argv, None, e.stdout, e.stderr, timeout)
        raise PeerStartError('%s timed out after %.0fs; log %s' % (
            ' '.join(argv), timeout, log_path)) from e
    _append(log_path, argv, done.returncode, done.stdout, done.stderr,
            time.monotonic() - started)
    if done.returncode not in ok:
        tail = '\n'.join(((done.stdout or '') + (done.stderr or ''))
                         .splitlines()[-40:])
        raise PeerStartError('%s exited %d; log %s:\n%s' % (
            ' '.join(argv), done.returncode, log_path, tail))
    return done.stdout


def _append(log_path, argv, code, out, err, seconds):
    def text(x):
        if isinstance(x, bytes):
            return x.decode('utf-8', 'replace')
        return x or ''
    with open(log_path, 'a', encoding='utf-8') as f:
        f.write('$ %s\n%s%s[exit %s after %.1fs]\n\n' % (
            ' '.join(argv), text(out), text(err), code, seconds))
