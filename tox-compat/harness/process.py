"""A peer process: start, wait until its HTTP answers, stop, keep its log.

Shared by every start_<peer> helper so they all behave the same way:
stdout and stderr go to `<workdir>/<name>.log`, a failed start raises with
the log's tail, stop() sends SIGTERM and kills after a grace period.
"""

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request

# Peers listen on loopback: never route the readiness probe through an
# http_proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PeerStartError(RuntimeError):
    """A peer did not come up; the message carries its log tail."""


class ManagedProcess:
    def __init__(self, name, argv, workdir, env=None):
        self.name = name
        self.argv = list(argv)
        self.workdir = str(workdir)
        self.env = dict(os.environ if env is None else env)
        self.log_path = os.path.join(self.workdir, '%s.log' % name)
        self.proc = None
        self._log_file = None

    def start(self):
        self._log_file = open(self.log_path, 'ab')
        self.proc = subprocess.Popen(
            self.argv, cwd=self.workdir, env=self.env,
            stdin=subprocess.DEVNULL, stdout=self._log_file,
            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_http(self, url, expect=200, timeout=30.0):
        """Poll `url` until it answers `expect`; raise with the log if the
        process dies or the time runs out."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if not self.running():
                raise PeerStartError(
                    '%s exited with %s before %s answered; log %s:\n%s' % (
                        self.name, self.proc.returncode, url, self.log_path,
                        self.log_tail()))
            try:
                with _OPENER.open(url, timeout=1) as resp:
                    if resp.status == expect:
                        return
                    last = 'HTTP %d' % resp.status
            except urllib.error.HTTPError as e:
                last = 'HTTP %d' % e.code
                if e.code == expect:
                    return
            except OSError as e:
                last = str(e)
            time.sleep(0.05)
        self.stop()
        raise PeerStartError(
            '%s did not answer %d at %s within %.0fs (last: %s); log %s:\n%s'
            % (self.name, expect, url, timeout, last, self.log_path,
               self.log_tail()))

    def stop(self, grace=10.0, group=False):
        """SIGTERM, then SIGKILL after `grace` seconds. Idempotent.

        With `group`, the whole process group gets them (it has one of
        its own), and stop returns once none of it runs: a service that
        forks workers (nova-scheduler under cotyledon) keeps a worker
        consuming its queue for seconds after its master is gone, and a
        request it takes then is lost."""
        if group and self.proc is not None:
            self._stop_group(grace)
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(grace)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None
        return None if self.proc is None else self.proc.returncode

    def _stop_group(self, grace):
        pgid = self.proc.pid  # start_new_session: the leader's pid

        def running():
            self.proc.poll()  # reap the leader, so it does not count
            try:
                os.killpg(pgid, 0)
                return True
            except ProcessLookupError:
                return False
            except PermissionError:
                return True

        for sig in (signal.SIGTERM, signal.SIGKILL):
            if not running():
                return
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while running() and time.monotonic() < deadline:
                time.sleep(0.05)

    def log_text(self):
        try:
            with open(self.log_path, encoding='utf-8',
                      errors='replace') as f:
                return f.read()
        except OSError:
            return ''

    def log_tail(self, lines=40):
        return '\n'.join(self.log_text().splitlines()[-lines:])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
