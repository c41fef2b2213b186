"""Start the real Ironic 39.0.0 (API and conductor in one process, the
`ironic` all-in-one) with fake-hardware nodes, on a per-test MariaDB
database.

    ir = start_ironic(workdir)
    node = ir.create_node('gold-1', resource_class='GOLD',
                          instance_uuid=server_uuid, state='active')
    ir.set_maintenance(node, True, reason='disk swap')
    nodes = ir.call('GET', '/v1/nodes?fields=uuid,resource_class').body

No message bus (`rpc_transport = none`), no Keystone (`auth_strategy =
noauth`), every hardware interface `fake` or `no-*`: a node goes enroll ->
manageable -> available -> active in under a second each, without any
machine behind it. The schema comes from `ironic-dbsync upgrade`.
"""

import json
import os
import time

from harness import mariadb
from harness import rest
from harness.commands import run_tool
from harness.ports import free_port
from harness.process import ManagedProcess
from harness.process import PeerStartError
from harness.venvs import peer_bin
from harness.venvs import peer_env

MICROVERSION = '1.115'  # Ironic 39's maximum; resource_class needs 1.21

_CONF = '''\
[DEFAULT]
rpc_transport = none
auth_strategy = noauth
host = steward-ironic
debug = false
enabled_hardware_types = fake-hardware
enabled_boot_interfaces = fake
enabled_deploy_interfaces = fake
enabled_management_interfaces = fake
enabled_power_interfaces = fake
enabled_network_interfaces = noop
enabled_storage_interfaces = noop
enabled_bios_interfaces = no-bios
enabled_console_interfaces = no-console
enabled_inspect_interfaces = no-inspect
enabled_raid_interfaces = no-raid
enabled_rescue_interfaces = no-rescue
enabled_vendor_interfaces = no-vendor
enabled_firmware_interfaces = no-firmware
default_network_interface = noop
minimum_memory_warning_only = true
[api]
host_ip = 127.0.0.1
port = {port}
[conductor]
automated_clean = false
[dhcp]
dhcp_provider = none
[database]
connection = {db_url}
[oslo_concurrency]
lock_path = {workdir}/locks
'''


class Ironic:
    def __init__(self, process, url, workdir, databases):
        self.process = process
        self.url = url  # the root: http://127.0.0.1:PORT (no /v1)
        self.workdir = workdir
        self.databases = databases

    # -- HTTP -----------------------------------------------------------

    def headers(self, microversion=MICROVERSION):
        return {'X-OpenStack-Ironic-API-Version': microversion}

    def request(self, method, path, body=None, microversion=MICROVERSION):
        return rest.request(method, self.url + path, body,
                            self.headers(microversion))

    def call(self, method, path, body=None, expect=(200,),
             microversion=MICROVERSION):
        return rest.call(method, self.url + path, body,
                         self.headers(microversion), expect=expect,
                         log=self.process.log_path)

    def node(self, uuid):
        return self.call('GET', '/v1/nodes/%s' % uuid).body

    # -- nodes ----------------------------------------------------------

    def create_node(self, name, resource_class, instance_uuid=None,
                    state='available', maintenance=False, properties=None,
                    uuid=None):
        """A fake-hardware node moved to `state` (enroll, manageable,
        available or active) the way an operator and Nova's driver would:
        manage, provide, then instance_uuid + deploy. Returns its uuid."""
        body = {'name': name, 'driver': 'fake-hardware',
                'properties': properties or {}}
        if resource_class:
            body['resource_class'] = resource_class
        if uuid:
            body['uuid'] = uuid
        node = self.call('POST', '/v1/nodes', body, expect=201).body['uuid']
        steps = {'enroll': [], 'manageable': ['manage'],
                 'available': ['manage', 'provide'],
                 'active': ['manage', 'provide', 'active']}
        if state not in steps:
            raise ValueError('state is one of %s, not %r' % (sorted(steps),
                                                             state))
        if instance_uuid:
            self.call('PATCH', '/v1/nodes/%s' % node, [
                {'op': 'add', 'path': '/instance_uuid',
                 'value': instance_uuid}])
        for target in steps[state]:
            if target == 'active':
                self.call('PATCH', '/v1/nodes/%s' % node, [
                    {'op': 'add', 'path': '/instance_info/image_source',
                     'value': 'http://127.0.0.1:9/image.qcow2'}])
            self.call('PUT', '/v1/nodes/%s/states/provision' % node,
                      {'target': target}, expect=202)
            self.wait_state(node, {'manage': 'manageable',
                                   'provide': 'available',
                                   'active': 'active'}[target])
        if maintenance:
            self.set_maintenance(node, True)
        return node

    def wait_state(self, node, state, timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            got = self.node(node)
            if got['provision_state'] == state and not got.get(
                    'target_provision_state'):
                return got
            if time.monotonic() > deadline:
                raise PeerStartError(
                    'ironic node %s stayed %s (target %s, last_error %s), '
                    'expected %s; log %s' % (
                        node, got['provision_state'],
                        got.get('target_provision_state'),
                        got.get('last_error'), state,
                        self.process.log_path))
            time.sleep(0.1)

    def set_maintenance(self, node, on, reason='steward test'):
        if on:
            self.call('PUT', '/v1/nodes/%s/maintenance' % node,
                      {'reason': reason}, expect=202)
        else:
            self.call('DELETE', '/v1/nodes/%s/maintenance' % node,
                      expect=202)

    def store_inventory(self, node, inventory, plugin_data=None):
        """What inspection leaves for a node ([inventory] data_backend =
        database, Ironic's default): a node_inventory row, JSON-encoded
        as Ironic's JsonEncodedDict writes it; GET
        /v1/nodes/{node}/inventory then answers it."""
        db = self.databases.names[0]
        url = self.databases.url
        node_id = mariadb.execute(db, 'SELECT id FROM nodes WHERE uuid = %s',
                                  (node,), url=url)[0][0]
        # version: the NodeInventory object version Ironic 39 writes.
        mariadb.execute(db, 'INSERT INTO node_inventory (inventory_data, '
                        'plugin_data, node_id, created_at, version) VALUES '
                        "(%s, %s, %s, UTC_TIMESTAMP(), '1.1')", (
                            json.dumps(inventory),
                            json.dumps(plugin_data or {}), node_id),
                        url=url)

    # -- lifecycle ------------------------------------------------------

    def log_text(self):
        return self.process.log_text()

    def stop(self):
        code = self.process.stop()
        self.databases.drop_all()
        return code

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_ironic(workdir, venv=None, start_timeout=60.0):
    """Create Ironic's database (steward_test_<random>_ironic, dropped at
    stop), run `ironic-dbsync upgrade` and start `ironic` all-in-one on a
    free loopback port; wait until its conductor is alive."""
    workdir = os.path.abspath(str(workdir))
    os.makedirs(os.path.join(workdir, 'locks'), exist_ok=True)
    databases = mariadb.Databases()
    db_url = databases.connection(databases.create('ironic'))
    env = peer_env('ironic', venv)
    try:
        for attempt in range(3):
            port = free_port()
            conf_path = os.path.join(workdir, 'ironic.conf')
            with open(conf_path, 'w', encoding='utf-8') as f:
                f.write(_CONF.format(port=port, db_url=db_url,
                                     workdir=workdir))
            if attempt == 0:
                run_tool([peer_bin('ironic', 'ironic-dbsync', venv),
                          '--config-file', conf_path, 'upgrade'],
                         workdir, 'ironic-dbsync', env)
            proc = ManagedProcess('ironic', [
                peer_bin('ironic', 'ironic', venv), '--config-file',
                conf_path], workdir, env=env).start()
            url = 'http://127.0.0.1:%d' % port
            try:
                proc.wait_http(url + '/v1', timeout=start_timeout)
                ir = Ironic(proc, url, workdir, databases)
                _wait_conductor(ir, start_timeout)
                return ir
            except PeerStartError:
                proc.stop()
                if attempt < 2 and 'in use' in proc.log_text().lower():
                    continue
                raise
    except BaseException:
        databases.drop_all()
        raise
    raise AssertionError('unreachable')


def _wait_conductor(ir, timeout):
    """The API answers before the conductor has registered its drivers; a
    node create in between gets 400 (no conductor for fake-hardware)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = ir.request('GET', '/v1/drivers')
        if resp.status == 200 and any(
                d.get('name') == 'fake-hardware'
                for d in (resp.body or {}).get('drivers', [])):
            return
        time.sleep(0.2)
    raise PeerStartError('ironic conductor registered no fake-hardware '
                         'driver within %.0fs; log %s' % (
                             timeout, ir.process.log_path))
