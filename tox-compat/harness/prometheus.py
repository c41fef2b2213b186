"""Start the real Prometheus (Debian's package) with weeks of imported
history and, optionally, live samples scraped from the harness.

    series = steal_scenario(noisy=['cmp-a1'], quiet=['cmp-b1'])
    prom = start_prometheus(workdir, history=series, weeks=4, end=now,
                            live=True)
    prom.live.set('node_load5', {'job': 'node', 'host': 'cmp-a1',
                                 'instance': 'cmp-a1:9100'}, 12.5)
    prom.query_range('rate(libvirt_domain_vcpu_delay_seconds_total[5m])',
                     start, end, step=3600)

History is written as OpenMetrics (sorted by time within each series,
timestamps in seconds, final `# EOF`) and imported with `promtool tsdb
create-blocks-from openmetrics --max-block-duration=24h` before the
server starts; retention is 60 days (the default 15 days silently deletes
older imported blocks). Out-of-order samples would be dropped silently,
so the writer emits each series whole, in time order.

History runs every `step` (60 s) from `weeks` weeks before the UTC
midnight preceding `end` up to `end`; the part before that midnight is
cached (see _history_blocks), so a warm start takes about 3 s.

Live samples: `live=True` serves a tiny /metrics target from the test
process that Prometheus scrapes every second with honor_labels, so a
sample set with the same labels as a history series (job, instance and
all) continues it. A value may be a function of the scrape's time, so a
counter reads exactly its rate at every scrape:

    prom.live.set(name, labels, lambda t: last + rate * (t - end))

`prom.live.remove(name, labels)` takes a series out of the next scrape,
and Prometheus then writes a staleness marker for it, as for a domain
that left a hypervisor's libvirt exporter: an instant selector no longer
sees it, while `rate(...[5m])` still does until its samples leave the
window.
"""

import hashlib
import http.server
import math
import os
import random
import shutil
import subprocess
import threading
import time
import urllib.parse

from harness import cache
from harness import rest
from harness.commands import run_tool
from harness.httpstub import LoopbackServer
from harness.ports import free_port
from harness.process import ManagedProcess
from harness.process import PeerStartError

DEBIAN_PACKAGE = 'prometheus'
RETENTION = '60d'
DAY = 86400
WEEK = 7 * DAY

# -- install ---------------------------------------------------------------


def ensure_installed():
    """(prometheus, promtool, version line): Debian's package, installed
    with apt-get (no recommends) when missing."""
    prom, tool = shutil.which('prometheus'), shutil.which('promtool')
    if not (prom and tool):
        if os.geteuid() != 0:
            raise PeerStartError(
                'prometheus is not installed and the tests do not run as '
                'root: apt-get install -y --no-install-recommends '
                'prometheus')
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        for argv in (['apt-get', 'update', '-qq'],
                     ['apt-get', 'install', '-y', '-qq',
                      '--no-install-recommends', DEBIAN_PACKAGE]):
            done = subprocess.run(argv, env=env, capture_output=True,
                                  text=True, timeout=600)
            if done.returncode != 0:
                raise PeerStartError('%s failed (exit %d): %s' % (
                    ' '.join(argv), done.returncode,
                    (done.stdout + done.stderr)[-3000:]))
        prom, tool = shutil.which('prometheus'), shutil.which('promtool')
        if not (prom and tool):
            raise PeerStartError('apt-get installed %s but prometheus or '
                                 'promtool is not on PATH' % DEBIAN_PACKAGE)
    done = subprocess.run([prom, '--version'], capture_output=True,
                          text=True, timeout=30)
    version = (done.stdout + done.stderr).strip().splitlines()[0]
    return prom, tool, version


# -- synthetic history -----------------------------------------------------


def daily_peak(base, peak, hour=20.0, width_hours=1.5, weekdays=None):
    """A curve of time (epoch seconds, UTC): `base` plus a bell of height
    `peak` centred on `hour` every day (or only on `weekdays`, 0=Monday).
    """
    def curve(t):
        day_hour = (t % DAY) / 3600.0
        if weekdays is not None and time.gmtime(t).tm_wday not in weekdays:
            return base
        d = min(abs(day_hour - hour), 24 - abs(day_hour - hour))
        return base + peak * math.exp(-(d * d) / (2 * width_hours ** 2))
    return curve


def flat(value):
    return lambda t: value


class Series:
    """One time series: `kind` 'counter' (the curve is its rate per
    second, accumulated, times `scale`) or 'gauge' (the curve is its
    value). `noise` is a relative jitter, seeded for repeatable runs."""

    def __init__(self, name, labels, curve, kind='gauge', scale=1.0,
                 noise=0.05, seed=0, start_value=0.0):
        if kind not in ('counter', 'gauge'):
            raise ValueError('kind is counter or gauge, not %r' % kind)
        self.name = name
        self.labels = dict(labels)
        self.curve = curve
        self.kind = kind
        self.scale = scale
        self.noise = noise
        self.seed = seed
        self.start_value = start_value

    def key(self):
        return (self.name, sorted(self.labels.items()))

    def samples(self, start, end, step):
        """(timestamp, value) from `start` to `end` inclusive."""
        rng = random.Random('%s/%r/%s' % (self.name, self.key(), self.seed))
        value = self.start_value
        t = start
        while t <= end:
            v = self.curve(t)
            if self.noise:
                v *= 1.0 + rng.uniform(-self.noise, self.noise)
            if self.kind == 'counter':
                value += max(v, 0.0) * step * self.scale
                yield t, value
            else:
                yield t, v
            t += step


def _labels_text(labels):
    def esc(v):
        return (str(v).replace('\\', '\\\\').replace('"', '\\"')
                .replace('\n', '\\n'))
    return ','.join('%s="%s"' % (k, esc(v)) for k, v in sorted(
        labels.items()))


def _fmt(v):
    return repr(float(v)) if not float(v).is_integer() else '%d' % v


def write_openmetrics(path, series, end, weeks=4, step=60, start=None):
    """Write `series` from `end - weeks` (or `start`) to `end` (epoch
    seconds, aligned down to `step`) as OpenMetrics text; the number of
    samples written."""
    end = int(end) // step * step
    start = int(start) if start is not None else end - int(weeks * WEEK)
    with open(path, 'w', encoding='utf-8') as f:
        n, _ = _emit(series, start // step * step, end, step, [(end + 1, f)])
    return n


def _emit(series, start, end, step, sinks):
    """Write each series whole and in time order, split over `sinks`: a
    list of (until, file) where a sample at t goes to the first sink with
    t < until. Every sink gets `# EOF`. Returns (samples, per-sink
    counts)."""
    counts = [0] * len(sinks)
    for s in sorted(series, key=Series.key):
        prefix = '%s{%s} ' % (s.name, _labels_text(s.labels))
        chunks = [[] for _ in sinks]
        for t, v in s.samples(start, end, step):
            for i, (until, _) in enumerate(sinks):
                if t < until:
                    chunks[i].append('%s%s %d\n' % (prefix, _fmt(v), t))
                    break
        for i, (_, f) in enumerate(sinks):
            f.writelines(chunks[i])
            counts[i] += len(chunks[i])
    for _, f in sinks:
        f.write('# EOF\n')
    return sum(counts), counts


class _Digest:
    """A write-only text sink that only hashes what it is given."""

    def __init__(self):
        self.h = hashlib.sha256()

    def writelines(self, lines):
        for line in lines:
            self.h.update(line.encode('utf-8'))

    def write(self, text):
        self.h.update(text.encode('utf-8'))


def _history_blocks(series, start, anchor, end, step, workdir, promtool):
    """Import history from `start` to `end` into <workdir>/data. The part
    before `anchor` (a UTC midnight) comes from the harness cache, keyed
    by a digest of its exact OpenMetrics text: promtool needs about 16 s
    for 4 weeks of the default scenario, a copy of its blocks
    milliseconds. The part from `anchor` on is imported each time."""
    datadir = os.path.join(workdir, 'data')
    digest = _Digest()
    _emit(series, start, anchor - step, step, [(anchor, digest)])
    key = 'prometheus-history-%s' % digest.h.hexdigest()[:20]

    def build(scratch):
        path = os.path.join(scratch, 'history.om')
        with open(path, 'w', encoding='utf-8') as f:
            _emit(series, start, anchor - step, step, [(anchor, f)])
        import_history(path, os.path.join(scratch, 'blocks'), promtool,
                       scratch)
        os.unlink(path)

    blocks = os.path.join(cache.build_once(key, build), 'blocks')
    shutil.copytree(blocks, datadir, dirs_exist_ok=True)
    tail = os.path.join(workdir, 'history-tail.om')
    with open(tail, 'w', encoding='utf-8') as f:
        total, counts = _emit(series, start, end, step,
                              [(anchor, _Digest()), (end + 1, f)])
    if counts[1]:
        import_history(tail, datadir, promtool, workdir)
    return total


def steal_scenario(noisy=('cmp-a1',), quiet=('cmp-b1',), domains_per_host=2,
                   vcpus=2, peak_hour=20.0, peak_steal=0.30, quiet_steal=0.004,
                   base_steal=0.01, ns=False):
    """The noisy-neighbour story: every host in `noisy` suffers CPU steal
    peaking at `peak_hour` UTC every day, every host in `quiet` stays
    quiet. Per host: libvirt_domain_vcpu_delay_seconds_total{host, domain,
    vcpu} counters (steal seconds per second per vCPU follow the curve;
    `ns=True` publishes nanoseconds under the same name, as one exporter
    does), node_load5{instance} of the hypervisor, and per guest
    node_cpu_seconds_total{mode="steal", cpu} as the guest sees it.
    Returns the list of Series; guests are named <host>-vm<i>."""
    series = []
    scale = 1e9 if ns else 1.0
    for host in list(noisy) + list(quiet):
        is_noisy = host in noisy
        steal = (daily_peak(base_steal, peak_steal, peak_hour) if is_noisy
                 else flat(quiet_steal))
        load = (daily_peak(8.0, 40.0, peak_hour) if is_noisy
                else flat(4.0))
        series.append(Series('node_load5', {
            'job': 'node', 'instance': '%s:9100' % host, 'host': host},
            load, 'gauge'))
        for d in range(domains_per_host):
            domain = 'instance-%s-%04d' % (host, d)
            guest = '%s-vm%d' % (host, d)
            for v in range(vcpus):
                series.append(Series(
                    'libvirt_domain_vcpu_delay_seconds_total', {
                        'job': 'libvirt', 'instance': '%s:9177' % host,
                        'host': host, 'domain': domain, 'vcpu': str(v)},
                    steal, 'counter', scale=scale))
                series.append(Series('node_cpu_seconds_total', {
                    'job': 'node', 'instance': '%s:9100' % guest,
                    'host': guest, 'cpu': str(v), 'mode': 'steal'},
                    steal, 'counter'))
    return series


def import_history(path, datadir, promtool=None, log_dir=None):
    """promtool tsdb create-blocks-from openmetrics into `datadir`."""
    promtool = promtool or ensure_installed()[1]
    os.makedirs(datadir, exist_ok=True)
    run_tool([promtool, 'tsdb', 'create-blocks-from', 'openmetrics',
              '--max-block-duration=24h', '-q', path, datadir],
             log_dir or os.path.dirname(path), 'promtool', timeout=600)


# -- live samples ----------------------------------------------------------


class LiveTarget(LoopbackServer):
    """A /metrics endpoint in the test process (text format 0.0.4).
    Samples are set, not accumulated: set a counter to its new total."""

    def __init__(self):
        self._values = {}
        self._lock = threading.Lock()
        self.scrapes = 0
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                target.scrapes += 1
                raw = target.exposition().encode('utf-8')
                self.send_response(200)
                self.send_header('Content-Type',
                                 'text/plain; version=0.0.4')
                self.send_header('Content-Length', str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def log_message(self, *args):
                pass

        super().__init__(Handler)

    def set(self, name, labels, value):
        """`value`: a number, or a function of the scrape's time (epoch
        seconds) that gives it."""
        with self._lock:
            self._values[(name, tuple(sorted(labels.items())))] = value

    def remove(self, name, labels):
        """Leave the series out of the next scrape: Prometheus marks it
        stale."""
        with self._lock:
            self._values.pop((name, tuple(sorted(labels.items()))), None)

    def exposition(self):
        now = time.time()
        with self._lock:
            items = sorted(self._values.items())
        return ''.join('%s{%s} %s\n' % (name, _labels_text(dict(labels)),
                                        _fmt(v(now) if callable(v) else v))
                       for (name, labels), v in items)



# -- the server ------------------------------------------------------------


class Prometheus:
    def __init__(self, process, url, workdir, version, live, history):
        self.process = process
        self.url = url
        self.workdir = workdir
        self.version = version
        self.live = live
        self.history = history  # {'start','end','step','samples','series'}

    def api(self, path, **params):
        """GET /api/v1/<path>; the `data` of a success answer. Raises
        naming the query and Prometheus' error otherwise."""
        url = '%s/api/v1/%s?%s' % (self.url, path,
                                   urllib.parse.urlencode(params))
        resp = rest.request('GET', url)
        body = resp.body if isinstance(resp.body, dict) else {}
        if resp.status != 200 or body.get('status') != 'success':
            raise rest.PeerRequestError('GET %s answered %d: %s; see %s' % (
                url, resp.status, resp.body, self.process.log_path))
        return body['data']

    def query(self, q, at=None):
        params = {'query': q}
        if at is not None:
            params['time'] = at
        return self.api('query', **params)['result']

    def query_range(self, q, start, end, step):
        return self.api('query_range', query=q, start=start, end=end,
                        step=step)['result']

    def wait_scraped(self, timeout=15.0):
        """Block until Prometheus has scraped the live target once more
        and its samples are queryable."""
        if self.live is None:
            raise ValueError('started without live=True')
        deadline = time.monotonic() + timeout
        seen = self.live.scrapes
        while time.monotonic() < deadline:
            if self.live.scrapes > seen + 1:
                return
            time.sleep(0.1)
        raise PeerStartError('prometheus did not scrape %s within %.0fs; '
                             'see %s' % (self.live.address, timeout,
                                         self.process.log_path))

    def log_text(self):
        return self.process.log_text()

    def stop(self):
        code = self.process.stop()
        if self.live is not None:
            self.live.stop()
        return code

    def restart(self, start_timeout=60.0):
        """Stop the server (if it runs) and start it again on the same port
        with the same data, as a Prometheus restarted by its operator; the
        live target, if any, keeps serving throughout."""
        self.process.stop()
        proc = ManagedProcess('prometheus', self.process.argv,
                              self.workdir).start()
        try:
            proc.wait_http(self.url + '/-/ready', timeout=start_timeout)
        except PeerStartError:
            proc.stop()
            raise
        self.process = proc
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def _config(live):
    lines = ['global:', '  scrape_interval: 15s',
             '  evaluation_interval: 15s', 'scrape_configs:']
    if live is not None:
        lines += ['  - job_name: steward-live', '    honor_labels: true',
                  '    scrape_interval: 1s', '    scrape_timeout: 1s',
                  '    static_configs:',
                  "      - targets: ['%s']" % live.address]
    else:
        lines[-1] = 'scrape_configs: []'
    return '\n'.join(lines) + '\n'


def start_prometheus(workdir, history=None, weeks=4, end=None, step=60,
                     live=False, start_timeout=60.0):
    """Import `history` (a list of Series, or the path of an OpenMetrics
    file) then serve it on a free loopback port with 60 days of
    retention. Series run every `step` seconds from `weeks` weeks before
    the UTC midnight preceding `end` (default now) to `end`."""
    workdir = os.path.abspath(str(workdir))
    datadir = os.path.join(workdir, 'data')
    os.makedirs(datadir, exist_ok=True)
    prom_bin, promtool, version = ensure_installed()
    info = None
    if isinstance(history, str):
        import_history(history, datadir, promtool, workdir)
    elif history is not None:
        end = int(end if end is not None else time.time()) // step * step
        anchor = end - end % DAY
        start = anchor - int(weeks * WEEK)
        n = _history_blocks(history, start, anchor, end, step, workdir,
                            promtool)
        info = {'start': start, 'end': end, 'step': step, 'samples': n,
                'series': len(history)}
    target = LiveTarget().start() if live else None
    config = os.path.join(workdir, 'prometheus.yml')
    with open(config, 'w', encoding='utf-8') as f:
        f.write(_config(target))
    for attempt in range(3):
        port = free_port()
        url = 'http://127.0.0.1:%d' % port
        proc = ManagedProcess('prometheus', [
            prom_bin, '--config.file=%s' % config,
            '--storage.tsdb.path=%s' % datadir,
            '--storage.tsdb.retention.time=%s' % RETENTION,
            '--web.listen-address=127.0.0.1:%d' % port,
            '--web.console.templates=/etc/prometheus/consoles',
            '--web.console.libraries=/etc/prometheus/console_libraries'],
            workdir).start()
        try:
            proc.wait_http(url + '/-/ready', timeout=start_timeout)
        except PeerStartError:
            proc.stop()
            if attempt < 2 and 'in use' in proc.log_text().lower():
                continue
            if target is not None:
                target.stop()
            raise
        return Prometheus(proc, url, workdir, version, target, info)
    raise AssertionError('unreachable')
