"""Writes etc/examples/weigh-100-hosts.json, the load test's request.

100 hosts over az1..az3 as a mixed fleet reports them to Nova, a few
instance uuids each, a boot of a `web` server (profile and role hint).
Deterministic: rerunning gives the same file.

    python3 tox-compat/bench/make_weigh_example.py \\
        > etc/examples/weigh-100-hosts.json
"""

import json
import random
import sys
import uuid

NS = uuid.UUID('9a1c7e52-3b0d-4f6e-8d2a-61f0b3c4d5e6')


def u(*parts):
    return str(uuid.uuid5(NS, '/'.join(str(p) for p in parts)))


def main():
    rng = random.Random(100)
    hosts = []
    for i in range(100):
        az = 'az%d' % (i % 3 + 1)
        name = 'cmp-%s-%03d' % (az, i)
        vcpus = rng.choice((48, 64, 96, 128))
        mem = vcpus * rng.choice((4096, 8192))
        disk = rng.choice((960, 1920, 3840))
        hosts.append({
            'host': name, 'nodename': name, 'uuid': u('node', name),
            'az': az, 'hypervisor_type': 'QEMU',
            'vcpus_total': vcpus, 'vcpus_used': rng.randint(0, vcpus * 3),
            'cpu_allocation_ratio': 4.0, 'memory_mb_total': mem,
            'memory_mb_free': rng.randint(mem // 10, mem),
            'ram_allocation_ratio': 1.0, 'disk_gb_total': disk,
            'disk_gb_free': rng.randint(disk // 10, disk),
            'instance_uuids': [u('vm', name, k)
                               for k in range(rng.randint(2, 5))],
        })
    request = {
        'operation': 'boot',
        'instance': {
            'uuid': u('new-server'),
            'project_id': 'a1b2c3d4e5f60718293a4b5c6d7e8f90',
            'flavor': {'name': 'm1.web', 'vcpus': 2, 'memory_mb': 4096,
                       'root_gb': 20, 'ephemeral_gb': 0, 'swap': 0,
                       'extra_specs': {'steward:profile': 'web'}},
            'requested_az': None,
            'current_host': None,
            'current_az': None,
            'scheduler_hints': {'steward_role': ['web']},
            'server_group': None,
        },
        'ignore_hosts': [],
        'hosts': hosts,
    }
    json.dump(request, sys.stdout, indent=1)
    sys.stdout.write('\n')


if __name__ == '__main__':
    main()
