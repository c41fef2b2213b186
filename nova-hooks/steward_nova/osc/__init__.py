"""The `openstack steward ...` commands: an OpenStackClient plugin.

Loaded by python-openstackclient through the `openstack.cli.extension`
entry point (plugin.py); one module per command group. Not imported by the
Nova shims, so Nova's scheduler venv needs neither osc-lib nor cliff.
"""
