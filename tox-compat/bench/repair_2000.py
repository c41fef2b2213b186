"""The Ironic inventory repair end to end at scale: `steward repair plan`
and `steward repair apply` over N legacy Ironic nodes (default 2,000)
against the real Placement, Keystone, Ironic and Nova's databases, beside
a plain client making the same Placement calls in the same run.

Seeds N fake-hardware Ironic nodes (half GOLD, half SILVER; an instance
on --instances of them; see settle_ironic) with Nova's own objects
(compute nodes, instances, request specs) and their Placement providers
as nova-compute reported
them before custom classes (VCPU, MEMORY_MB, DISK_GB beside CUSTOM_<CLASS>),
the instances' allocations consuming all four classes; and a second,
identically shaped set of N providers and consumers for the plain client.
Then times, with steward's own accounting (`timings`: the union of the
intervals in which a call to Placement, a Nova database, the journal,
Ironic, the Nova API or Keystone was outstanding):

  steward plan    `steward repair plan --all -f json`
  steward apply   `steward repair apply --all -f json`, checked: every
                  node repaired
  plain plan      per provider GET inventories, usages, allocations
  plain apply     the same reads, then per node what apply sends to
                  Placement: GET+PUT /allocations/{consumer} (shrink),
                  GET+PUT inventories (custom class only), GET usages +
                  allocations (check)

with the same concurrency as steward ([repair] concurrency), and prints
nodes/s, steward's share of wall time spent waiting on Placement and the
databases, and the ratio of steward's throughput to the plain client's.

    tox -c tox-compat/tox.ini -e repair-bench                  # 2,000
    tox -c tox-compat/tox.ini -e repair-bench -- --nodes 50
    STEWARD_BIN=$PWD/target/debug/steward \\
        tox -c tox-compat/tox.ini -e repair-bench -- --nodes 50
"""

import argparse
import concurrent.futures
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..'))

import requests  # noqa: E402

from harness import mariadb  # noqa: E402
from harness.peers import Cloud  # noqa: E402
from harness.repair_runs import steward_env  # noqa: E402
from harness.steward import default_binary  # noqa: E402

SIZES = {'vcpus': 64, 'memory_mb': 131072, 'disk_gb': 371}
CLASSES = ('GOLD', 'SILVER')
PROJECT = 'e5c4f0a1b2c34d5e8f9a0b1c2d3e4f50'
USER = 'a1b2c3d4e5f64718293a4b5c6d7e8f90'


def log(msg):
    print('[%s] %s' % (time.strftime('%H:%M:%S'), msg), flush=True)


def load_average():
    with open('/proc/loadavg', encoding='utf-8') as f:
        return ' '.join(f.read().split()[:3])


def description(n, with_instance):
    hosts, servers = [], []
    for i in range(n):
        cls = CLASSES[i % 2]
        host = 'bm-%05d' % i
        # Enrolled through Ironic's API (POST, PATCH instance_uuid);
        # moved to active/available afterwards (see settle_ironic).
        hosts.append(dict(host=host, ironic={'resource_class': cls,
                                             'state': 'enroll'}, **SIZES))
        if i < with_instance:
            servers.append({'name': 'inst-%05d' % i, 'host': host,
                            'flavor': 'bm.' + cls.lower()})
    flavors = [{'name': 'bm.' + c.lower(), 'vcpus': SIZES['vcpus'],
                'memory_mb': SIZES['memory_mb'], 'root_gb': SIZES['disk_gb'],
                'extra_specs': {'resources:CUSTOM_%s' % c: '1'}}
               for c in CLASSES]
    return {'hosts': hosts, 'servers': servers, 'flavors': flavors}


def settle_ironic(ironic):
    """What manage, provide and deploy leave in Ironic's `nodes` row of
    a fake-hardware node (provision_state active with an instance,
    available without), written at once: walking 2,000 nodes through
    three provision transitions takes Ironic's conductor a quarter of an
    hour here, and steward reads only the state's name."""
    db = ironic.databases.names[0]
    mariadb.execute(db, "UPDATE nodes SET provision_state = IF("
                    "instance_uuid IS NULL, 'available', 'active'), "
                    "target_provision_state = NULL, "
                    "provision_updated_at = UTC_TIMESTAMP()")


def each(workers, items, fn):
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(fn, items))


def seed_plain_set(placement, n, with_instance, workers):
    """N providers and consumers shaped as the Ironic nodes' (legacy
    inventory, allocations of all four classes); [(provider, consumer or
    None, class)]."""
    def one(i):
        cls = 'CUSTOM_' + CLASSES[i % 2]
        rp = placement.create_provider('plain-%05d' % i)
        placement.set_inventory(rp, {
            'VCPU': {'total': SIZES['vcpus'], 'max_unit': SIZES['vcpus'],
                     'reserved': 0, 'allocation_ratio': 1.0},
            'MEMORY_MB': {'total': SIZES['memory_mb'],
                          'max_unit': SIZES['memory_mb'], 'reserved': 0,
                          'allocation_ratio': 1.0},
            'DISK_GB': {'total': SIZES['disk_gb'],
                        'max_unit': SIZES['disk_gb'], 'reserved': 0,
                        'allocation_ratio': 1.0},
            cls: {'total': 1, 'max_unit': 1, 'reserved': 0}})
        consumer = None
        if i < with_instance:
            consumer = str(uuidlib.uuid4())
            placement.allocate(consumer, {rp: {
                'VCPU': SIZES['vcpus'], 'MEMORY_MB': SIZES['memory_mb'],
                'DISK_GB': SIZES['disk_gb'], cls: 1}}, PROJECT, USER)
        return rp, consumer, cls
    return each(workers, range(n), one)


class PlainClient:
    """requests.Session per thread against Placement with a token: what a
    small script would do. Counts its calls."""

    def __init__(self, url, token):
        self.url = url
        self.headers = {'X-Auth-Token': token,
                        'OpenStack-API-Version': 'placement 1.39',
                        'Accept': 'application/json'}
        self.local = threading.local()
        self.calls = 0
        self.lock = threading.Lock()

    def _session(self):
        s = getattr(self.local, 'session', None)
        if s is None:
            s = requests.Session()
            s.trust_env = False  # loopback: never through a proxy
            self.local.session = s
        return s

    def call(self, method, path, body=None, expect=200):
        r = self._session().request(method, self.url + path, json=body,
                                    headers=self.headers, timeout=60)
        with self.lock:
            self.calls += 1
        if r.status_code != expect:
            raise AssertionError('%s %s answered %d: %s' % (
                method, path, r.status_code, r.text[:500]))
        return r.json() if r.content else None

    def gather(self, item):
        rp = item[0]
        self.call('GET', '/resource_providers/%s/inventories' % rp)
        self.call('GET', '/resource_providers/%s/usages' % rp)
        self.call('GET', '/resource_providers/%s/allocations' % rp)

    def repair(self, item):
        rp, consumer, cls = item
        if consumer:
            cur = self.call('GET', '/allocations/%s' % consumer)
            self.call('PUT', '/allocations/%s' % consumer, {
                'allocations': {rp: {'resources': {cls: 1}}},
                'project_id': cur['project_id'], 'user_id': cur['user_id'],
                'consumer_generation': cur['consumer_generation'],
                'consumer_type': 'INSTANCE'}, expect=204)
        inv = self.call('GET', '/resource_providers/%s/inventories' % rp)
        mine = dict(inv['inventories'][cls], reserved=0)
        self.call('PUT', '/resource_providers/%s/inventories' % rp, {
            'resource_provider_generation':
                inv['resource_provider_generation'],
            'inventories': {cls: mine}})
        usages = self.call('GET', '/resource_providers/%s/usages' % rp)
        self.call('GET', '/resource_providers/%s/allocations' % rp)
        want = {cls: 1} if consumer else {cls: 0}
        if usages['usages'] != want:
            raise AssertionError('plain client: provider %s uses %s, not %s'
                                 % (rp, usages['usages'], want))


def timed(fn):
    started = time.monotonic()
    out = fn()
    return out, time.monotonic() - started


def run_steward(binary, env, args, workdir):
    started = time.monotonic()
    done = subprocess.run([binary, 'repair'] + args, env=env,
                          capture_output=True, text=True, timeout=7200,
                          cwd=workdir)
    wall = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit('steward repair %s exited %d:\n%s\n%s' % (
            ' '.join(args), done.returncode, done.stdout[-3000:],
            done.stderr[-3000:]))
    return json.loads(done.stdout), wall, done.stderr


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--nodes', type=int, default=2000)
    p.add_argument('--instances', type=float, default=0.9,
                   help='share of the nodes with an instance (0.9)')
    p.add_argument('--concurrency', type=int, default=8,
                   help="steward's [repair] concurrency and the plain "
                        "client's threads (8: Placement's threads)")
    p.add_argument('--seed-workers', type=int, default=16)
    p.add_argument('--journal', choices=('mysql', 'sqlite'),
                   default='mysql',
                   help="steward's own database (the repair journal)")
    p.add_argument('--json', help='also write the figures here')
    p.add_argument('--steward', default=os.environ.get('STEWARD_BIN') or
                   default_binary())
    args = p.parse_args(argv)
    binary = os.path.abspath(args.steward)
    if not os.access(binary, os.X_OK):
        raise SystemExit('no steward binary at %s: build it (cargo build '
                         '--release --bin steward) or set STEWARD_BIN'
                         % binary)
    n = args.nodes
    with_instance = int(round(n * args.instances))
    workdir = tempfile.mkdtemp(prefix='steward-repair-bench-')
    log('workdir %s; steward %s; %d nodes, %d with an instance; load %s'
        % (workdir, binary, n, with_instance, load_average()))
    cloud = Cloud(os.path.join(workdir, 'cloud'), keystone=True, nova=True,
                  ironic=True).start()
    journal = mariadb.Databases()
    try:
        return bench(args, cloud, journal, binary, workdir, n, with_instance)
    finally:
        journal.drop_all()
        cloud.stop()


def bench(args, cloud, journal, binary, workdir, n, with_instance):
    log('peers up in %.1fs (%s)' % (cloud.timings['start'], cloud.timings))
    # The plain client's providers meanwhile: Nova's seeder is one process.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        plain_job = pool.submit(timed, lambda: seed_plain_set(
            cloud.placement, n, with_instance, args.seed_workers))
        _, t = timed(lambda: cloud.seed(description(n, with_instance),
                                        workers=args.seed_workers,
                                        timeout=3600))
        settle_ironic(cloud.ironic)
        log('seeded Nova, Ironic and Placement for %d nodes in %.1fs'
            % (n, t))
        plain_set, t = plain_job.result()
        log('seeded the plain client\'s %d providers in %.1fs' % (n, t))
    cloud.steward_identity()

    db_url = None
    if args.journal == 'mysql':
        db_url = '%s/%s' % (journal.url.rstrip('/'),
                            journal.create('journal'))
    env = steward_env(cloud, workdir, db_url)
    env['STEWARD__REPAIR__CONCURRENCY'] = str(args.concurrency)
    load_before = load_average()

    log('steward repair plan --all')
    plan, plan_wall, _ = run_steward(binary, env, ['plan', '--all', '-f',
                                                   'json'], workdir)
    needs = sum(1 for x in plan['nodes'] if x['status'] == 'needs_repair')
    if needs != n:
        raise SystemExit('steward planned %d of %d nodes for repair' % (
            needs, n))
    log('steward repair apply --all')
    report, apply_wall, _ = run_steward(
        binary, env, ['apply', '--all', '-f', 'json', '--no-progress'],
        workdir)
    repaired = sum(1 for x in report['nodes'] if x['result'] == 'repaired')
    if not report['ok'] or repaired != n:
        raise SystemExit('steward repaired %d of %d nodes: %s' % (
            repaired, n, [x for x in report['nodes']
                          if x['result'] != 'repaired'][:5]))

    log('plain client')
    plain = PlainClient(cloud.placement.url, cloud.placement.token())
    _, plain_plan_wall = timed(lambda: each(args.concurrency, plain_set,
                                            plain.gather))
    plain_plan_calls = plain.calls

    def plain_apply():
        each(args.concurrency, plain_set, plain.gather)
        each(args.concurrency, plain_set, plain.repair)
    _, plain_apply_wall = timed(plain_apply)
    plain_apply_calls = plain.calls - plain_plan_calls
    load_after = load_average()

    pt, at = plan['timings'], report['timings']
    rows = [
        ('steward plan', plan_wall, pt['peers']['placement']['calls']),
        ('steward apply', apply_wall, at['peers']['placement']['calls']),
        ('plain plan', plain_plan_wall, plain_plan_calls),
        ('plain apply', plain_apply_wall, plain_apply_calls),
    ]
    print()
    print('%d nodes (%d with an instance), concurrency %d, journal %s; '
          'load average %s before, %s after' % (
              n, with_instance, args.concurrency, args.journal,
              load_before, load_after))
    print('%-14s %9s %9s %15s' % ('RUN', 'WALL_S', 'NODES/S',
                                  'PLACEMENT_CALLS'))
    for name, wall, calls in rows:
        print('%-14s %9.2f %9.1f %15d' % (name, wall, n / wall, calls))
    print()
    for name, t in (('plan', pt), ('apply', at)):
        print('steward %s (its own clock, connect to end: %.2fs of the '
              '%.2fs process):' % (
                  name, t['wall_s'], plan_wall if name == 'plan'
                  else apply_wall))
        for peer, v in sorted(t['peers'].items()):
            print('  %-10s %7d calls  sum %8.2fs  union %7.2fs (%5.1f%%)'
                  % (peer, v['calls'], v['sum_s'], v['union_s'],
                     100 * v['union_s'] / t['wall_s']))
        print('  waiting on Placement and the databases %.1f%%, on any '
              'peer %.1f%%, on nobody %.2fs' % (
                  100 * t['placement_and_databases_share'],
                  100 * t['waiting_share'], t['steward_s']))
    ratio_plan = plain_plan_wall / plan_wall
    ratio_apply = plain_apply_wall / apply_wall
    print()
    print('throughput steward/plain: plan %.2f, apply %.2f (target >= 0.80)'
          % (ratio_plan, ratio_apply))
    print('share of steward apply in Placement+databases: %.1f%% '
          '(target >= 80%%)' % (100 * at['placement_and_databases_share']))
    figures = {
        'nodes': n, 'with_instance': with_instance,
        'concurrency': args.concurrency, 'journal': args.journal,
        'load_before': load_before, 'load_after': load_after,
        'steward_plan': {'wall_s': plan_wall, 'nodes_per_s': n / plan_wall,
                         'timings': pt},
        'steward_apply': {'wall_s': apply_wall,
                          'nodes_per_s': n / apply_wall, 'timings': at},
        'plain_plan': {'wall_s': plain_plan_wall,
                       'nodes_per_s': n / plain_plan_wall,
                       'placement_calls': plain_plan_calls},
        'plain_apply': {'wall_s': plain_apply_wall,
                        'nodes_per_s': n / plain_apply_wall,
                        'placement_calls': plain_apply_calls},
        'ratio_plan': ratio_plan, 'ratio_apply': ratio_apply,
    }
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as f:
            json.dump(figures, f, indent=1, sort_keys=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
