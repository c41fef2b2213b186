"""nova-compute serving many fake nodes from one process (test only).

Nova's own functional tests give one fake compute several nodes with
`FakeDriver._set_nodes` (nova/virt/fake.py: "not part of the driver
interface but used by our tests"). This runs the real nova-compute
(`nova.cmd.compute.main`) with `compute_driver =
steward_fake_nodes.FakeNodesDriver`: a FakeDriver whose host `cmp-1`
reports the nodes `cmp-1-n0` .. `cmp-1-n{M-1}`, M from
$STEWARD_FAKE_NODES. Each node is its own compute node and resource
provider (FakeDriver gives each nodename a stable uuid of its own), all
under the one service host, so a host aggregate (an AZ) holds them all.

Nova loads drivers from under `nova.virt` only, so the class is put in
sys.modules as `nova.virt.steward_fake_nodes` before nova-compute starts.

    python -m harness.fake_nodes --config-file nova.conf \
        --config-file cmp-1.conf
"""

import os
import sys
import types

MODULE = 'nova.virt.steward_fake_nodes'
DRIVER = 'steward_fake_nodes.FakeNodesDriver'
ENV = 'STEWARD_FAKE_NODES'


def node_names(host, count):
    return ['%s-n%d' % (host, i) for i in range(count)]


def driver_class():
    # Imported here: harness/nova_plane.py imports this module for the
    # names above, and the test process need not load Nova's virt layer.
    from nova.virt import fake

    class FakeNodesDriver(fake.FakeDriver):
        def init_host(self, host):
            super().init_host(host)
            self._set_nodes(node_names(host, int(os.environ.get(ENV, '1'))))

    return FakeNodesDriver


def main():
    # First: it patches the process (threading, not eventlet) before
    # anything imports the rest of Nova.
    from nova.cmd import compute
    module = types.ModuleType(MODULE)
    module.FakeNodesDriver = driver_class()
    sys.modules[MODULE] = module
    return compute.main()


if __name__ == '__main__':
    sys.exit(main())
