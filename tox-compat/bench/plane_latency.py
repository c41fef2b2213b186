"""What the shim adds to a boot in the real scheduler (a benchmark).

Starts the whole control plane through the harness (harness/nova_plane.py:
Keystone, Placement, Nova API, conductor, scheduler, N fake-driver
computes in two AZ aggregates, each compute serving --nodes fake nodes
through harness/fake_nodes.py) and a steward, then boots servers through
the real Nova API, in rounds: a block of --round boots with Nova's own
filters and weighers, a block with the shim installed as
docs/operations.md says (plane.use_steward), the order swapped every
round (ABBA), every server deleted after its block so the hosts do not
fill. After each switch of the scheduler one unmeasured boot warms it up
(its host states and, with the shim, steward's host cache).

Per boot it measures, client side, POST /servers to ACTIVE (GET every
0.05 s), and from nova-scheduler's own log (nova.scheduler.manager and
nova.filters at DEBUG, timestamps to the millisecond, lines matched by
request id):

    scheduler   "Starting to schedule for instances" -> "Selected host"
                (select_destinations: allocation candidates from Placement,
                host states, filters, weighers, the claim in Placement)
    filters     "Starting with N host(s)" -> "Filtered [...]"
                (with the shim, StewardFilter's round trip to steward)
    weighers    "Filtered [...]" -> "Weighed [...]"

and prints min / median / max per variant, and the shim's added share as
the median of paired ratios (k-th boot with the shim over the k-th boot
without it in the same round), beside the difference of the medians.

    tox -c tox-compat/tox.ini -e plane-bench
    tox -c tox-compat/tox.ini -e plane-bench -- --computes 2 --nodes 5 \
        --boots 4 --round 2
"""

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))

from harness.peers import Cloud  # noqa: E402
from harness.steward import REPO_ROOT  # noqa: E402
from harness.steward import start_steward  # noqa: E402

VARIANTS = ('nova', 'shim')
LABELS = {'nova': 'Nova alone', 'shim': 'Nova + shim'}
METRICS = ('boot', 'scheduler', 'filters', 'weighers')
SCHEDULER_LOG_LEVELS = 'nova.scheduler.manager=DEBUG,nova.filters=DEBUG'
_LINE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) \d+ \w+ \S+ '
                   r'\[\S+ (req-[0-9a-f-]+)')
_MARKS = (('start', 'Starting to schedule for instances: '),
          ('filter_start', 'Starting with '),
          ('filtered', 'Filtered ['),
          ('weighed', 'Weighed ['),
          ('selected', 'Selected host: '))
_UUID = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-'
                   r'[0-9a-f]{12}')


def _ts(text):
    return time.mktime(time.strptime(text[:19], '%Y-%m-%d %H:%M:%S')) + (
        int(text[20:23]) / 1000.0)


def scheduler_times(log_text):
    """{instance uuid: {'scheduler', 'filters', 'weighers': ms}} from
    nova-scheduler's log (the first mark of each kind per request)."""
    marks = {}
    for line in log_text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        for name, text in _MARKS:
            i = line.find(text, m.end())
            if i >= 0:
                req = marks.setdefault(m.group(2), {})
                req.setdefault(name, _ts(m.group(1)))
                if name == 'start':
                    req.setdefault('uuids', _UUID.findall(line[i:]))
                break
    out = {}
    for req in marks.values():
        if not all(k in req for k, _ in _MARKS):
            continue
        t = {'scheduler': req['selected'] - req['start'],
             'filters': req['filtered'] - req['filter_start'],
             'weighers': req['weighed'] - req['filtered']}
        for uuid in req.get('uuids', ()):
            out[uuid] = {k: round(v * 1000.0, 1) for k, v in t.items()}
    return out


def rss_mb(pids):
    """Resident set of the processes and their children, MB."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open('/proc/%s/stat' % entry) as f:
                    ppid = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo, seen = 0, list(pids), set()
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
        try:
            with open('/proc/%d/status' % pid) as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024.0


class Bench:
    def __init__(self, plane, steward, azs, flavor, image):
        self.plane, self.st = plane, steward
        self.azs, self.flavor, self.image = azs, flavor, image
        self.variant = 'nova'
        self.count = 0

    def switch(self, variant):
        if variant == self.variant:
            return
        if variant == 'shim':
            self.plane.use_steward(self.st)
        else:
            self.plane.remove_shim()
        self.variant = variant
        self.boot(warmup=True)

    def boot(self, warmup=False):
        """POST /servers, GET until ACTIVE; (server id, seconds)."""
        nova = self.plane.nova
        self.count += 1
        body = {'server': {
            'name': 'bench-%d' % self.count, 'flavorRef': self.flavor,
            'imageRef': self.image, 'networks': 'none',
            'availability_zone': self.azs[self.count % len(self.azs)]}}
        started = time.monotonic()
        sid = nova.call('POST', '/servers', body, expect=(202,))[
            'server']['id']
        while True:
            s = nova.get('/servers/%s' % sid)['server']
            if s['status'] == 'ACTIVE' and not s.get('OS-EXT-STS:task_state'):
                break
            if s['status'] == 'ERROR':
                raise RuntimeError('server %s (%s) went ERROR: %s' % (
                    sid, self.variant, s.get('fault')))
            if time.monotonic() - started > 180:
                raise RuntimeError('server %s not ACTIVE in 180 s' % sid)
            time.sleep(0.05)
        return sid, time.monotonic() - started

    def delete_all(self):
        """Delete every server; DELETE again what is left every 10 s (a
        delete that failed on the compute, e.g. Placement resetting a
        connection on this loaded machine, leaves the server ERROR)."""
        nova = self.plane.nova
        deadline = time.monotonic() + 180
        again = 0.0
        while True:
            left = nova.get('/servers')['servers']
            if not left:
                return
            if time.monotonic() > deadline:
                raise RuntimeError('servers not deleted in 180 s: %s' % [
                    s['id'] for s in left])
            if time.monotonic() >= again:
                for s in left:
                    nova.call('DELETE', '/servers/%s' % s['id'],
                              expect=(204, 404, 409))
                again = time.monotonic() + 10
            time.sleep(0.2)

    def block(self, variant, n):
        """n boots with `variant`; [{'id', 'boot', 'scheduler', ...}]."""
        self.switch(variant)
        rows = []
        for _ in range(n):
            sid, secs = self.boot()
            rows.append({'id': sid, 'boot': round(secs * 1000.0, 1)})
        times = scheduler_times(self.plane.scheduler_log())
        for row in rows:
            row.update(times.get(row['id'], {}))
        self.delete_all()
        return rows


def _stats(values):
    values = [v for v in values if v is not None]
    if not values:
        return 'n/a'
    return '%8.1f %8.1f %8.1f' % (min(values), statistics.median(values),
                                  max(values))


def report(runs, pairs):
    print('\nms per boot, min / median / max (%d boots per variant)' % (
        len(runs['nova'])))
    print('%-22s %-26s %-26s' % ('', LABELS['nova'], LABELS['shim']))
    for metric in METRICS:
        print('%-22s %-26s %-26s' % (
            {'boot': 'POST to ACTIVE', 'scheduler': 'scheduler (log)',
             'filters': 'filters (log)', 'weighers': 'weighers (log)'}[
                metric], _stats(r.get(metric) for r in runs['nova']),
            _stats(r.get(metric) for r in runs['shim'])))
    print('\nadded by the shim: median of paired ratios (k-th boot with the '
          'shim / k-th without, same round) - 1; difference of medians')
    for metric in METRICS:
        ratios = [s[metric] / n[metric] for n, s in pairs
                  if n.get(metric) and s.get(metric) is not None]
        med = {v: [r[metric] for r in runs[v] if r.get(metric) is not None]
               for v in VARIANTS}
        if not ratios or not med['nova'] or not med['shim']:
            print('  %-10s n/a' % metric)
            continue
        a, b = statistics.median(med['nova']), statistics.median(med['shim'])
        print('  %-10s paired %+6.1f %%   medians %+7.1f ms (%+.1f %%)' % (
            metric, (statistics.median(ratios) - 1) * 100.0, b - a,
            (b / a - 1) * 100.0 if a else float('nan')))


def run(args):
    if not os.access(args.steward_bin, os.X_OK):
        sys.exit('no steward binary at %s: cargo build --release --locked '
                 '--bin steward, or set STEWARD_BIN' % args.steward_bin)
    os.environ['STEWARD_BIN'] = args.steward_bin
    workdir = args.workdir or tempfile.mkdtemp(prefix='plane-latency-')
    half = args.computes // 2
    azs = {'az1': half, 'az2': args.computes - half} if half else {
        'az1': args.computes}
    cloud = Cloud(workdir, plane=True, computes=args.computes, azs=azs,
                  plane_opts={'nodes': args.nodes or None,
                              'scheduler_log_levels': SCHEDULER_LOG_LEVELS})
    started = time.monotonic()
    st = None
    try:
        cloud.start()
        up = time.monotonic() - started
        plane = cloud.plane
        n_nodes = len(plane.hypervisor_names())
        print('plane up in %.0f s: %d computes, %d nodes (%s), workdir %s' % (
            up, len(plane.hosts), n_nodes, ', '.join(
                '%s: %d computes' % (az, n) for az, n in azs.items()),
            workdir))
        st = start_steward(os.path.join(workdir, 'steward'))
        flavor = [f['id'] for f in plane.nova.get('/flavors')['flavors']
                  if f['name'] == 'm1.small'][0]
        bench = Bench(plane, st, sorted(azs), flavor,
                      plane.bus.images.default['id'])
        bench.boot(warmup=True)
        bench.delete_all()
        runs = {v: [] for v in VARIANTS}
        pairs = []
        rounds = max(1, args.boots // args.round)
        for r in range(rounds):
            order = VARIANTS if r % 2 == 0 else VARIANTS[::-1]
            got = {}
            for variant in order:
                got[variant] = bench.block(variant, args.round)
                runs[variant].extend(got[variant])
                print('round %d %-5s boot ms %s' % (
                    r + 1, variant, ' '.join(
                        '%.0f' % row['boot'] for row in got[variant])),
                    flush=True)
            pairs.extend(zip(got['nova'], got['shim'], strict=True))
        procs = [p.proc.pid for p in plane.procs.values() if p.running()]
        computes = [plane.procs[h].proc.pid for h in plane.hosts]
        print('\nplane: %d computes x %s nodes = %d nodes; RSS of the Nova '
              'services %.0f MB (computes %.0f MB), steward %.0f MB' % (
                  len(plane.hosts), args.nodes or 1, n_nodes, rss_mb(procs),
                  rss_mb(computes), rss_mb([st.process.proc.pid])))
        report(runs, pairs)
        if args.json:
            with open(args.json, 'w', encoding='utf-8') as f:
                json.dump({'computes': len(plane.hosts), 'nodes': n_nodes,
                           'plane_start_s': round(up, 1), 'runs': runs}, f,
                          indent=1)
    finally:
        if st is not None:
            st.stop()
        cloud.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--computes', type=int, default=6,
                   help='nova-compute processes (half in az1, half in az2)')
    p.add_argument('--nodes', type=int, default=50,
                   help='fake nodes per compute (0: one, named as its host)')
    p.add_argument('--boots', type=int, default=20,
                   help='measured boots per variant')
    p.add_argument('--round', type=int, default=5,
                   help='boots per block; blocks alternate ABBA')
    p.add_argument('--steward-bin', default=os.environ.get(
        'STEWARD_BIN') or os.path.join(REPO_ROOT, 'target', 'release',
                                       'steward'))
    p.add_argument('--workdir', default=None)
    p.add_argument('--json', metavar='FILE',
                   help='also write every boot\'s figures to FILE')
    run(p.parse_args())


if __name__ == '__main__':
    main()
