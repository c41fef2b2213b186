"""Read an instance back through Nova's own objects, as nova-compute,
conductor and the scheduler would, and print what Placement would be
asked for. Runs inside Nova's venv with the nova.conf of the API:

    python nova_inspect.py --config-file nova.conf INSTANCE_UUID...
    python nova_inspect.py --config-file nova.conf --destroy INSTANCE_UUID...

Prints JSON: per instance the extra specs of its embedded flavors (cur,
old, new) and of its request spec's flavor, and
scheduler_utils.resources_from_flavor_and_bfv of each. --destroy deletes
the instances as nova-compute does (Instance.destroy(): the instance and
its instance_extra row soft-deleted) and prints nothing else.
"""

import argparse
import json
import os
import sys

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')
from nova import monkey_patch  # noqa: E402, I001

monkey_patch.patch(backend='threading')

from nova import config  # noqa: E402
from nova import context as nova_context  # noqa: E402
from nova import objects  # noqa: E402
from nova.scheduler import utils as scheduler_utils  # noqa: E402


def inspect(ctx, uuid):
    mapping = objects.InstanceMapping.get_by_instance_uuid(ctx, uuid)
    with nova_context.target_cell(ctx, mapping.cell_mapping) as cctx:
        inst = objects.Instance.get_by_uuid(
            cctx, uuid, expected_attrs=['flavor'])
    spec = objects.RequestSpec.get_by_instance_uuid(ctx, uuid)
    out = {}
    for name, flavor in (('cur', inst.flavor), ('old', inst.old_flavor),
                         ('new', inst.new_flavor), ('request_spec',
                                                    spec.flavor)):
        if flavor is None:
            out[name] = None
            continue
        out[name] = {
            'name': flavor.name, 'flavorid': flavor.flavorid,
            'vcpus': flavor.vcpus, 'memory_mb': flavor.memory_mb,
            'root_gb': flavor.root_gb,
            'extra_specs': dict(flavor.extra_specs),
            'resources': scheduler_utils.resources_from_flavor_and_bfv(
                flavor, False)}
    return out


def destroy(ctx, uuid):
    mapping = objects.InstanceMapping.get_by_instance_uuid(ctx, uuid)
    with nova_context.target_cell(ctx, mapping.cell_mapping) as cctx:
        objects.Instance.get_by_uuid(cctx, uuid).destroy()
    return {'destroyed': True}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--config-file', required=True)
    p.add_argument('--destroy', action='store_true')
    p.add_argument('instances', nargs='+')
    args = p.parse_args(argv)
    config.parse_args(['nova-inspect'],
                      default_config_files=[args.config_file])
    objects.register_all()
    ctx = nova_context.get_admin_context()
    act = destroy if args.destroy else inspect
    print(json.dumps({u: act(ctx, u) for u in args.instances},
                     indent=1, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
