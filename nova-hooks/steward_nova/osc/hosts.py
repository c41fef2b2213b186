"""`openstack steward host list|show`: the hypervisors steward knows, with
their AZ, steal, load and how fresh that is."""

import urllib.parse

from osc_lib.command import command

from steward_nova.osc import format as fmt


class ListHost(command.Lister):
    """List the hypervisors steward knows (from telemetry and Nova)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--long', action='store_true', default=False,
            help='Also show CPU use and when the data was measured')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        return fmt.host_rows(client.get('/v1/hosts'), long=parsed_args.long)


class ShowHost(command.ShowOne):
    """Show what steward knows of one hypervisor: AZ, steal, load, VMs by
    role and its steal profile's peak hour."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('host', metavar='<host>',
                            help='Hypervisor host name')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        answer = client.get('/v1/hosts/%s' % urllib.parse.quote(
            parsed_args.host, safe=''))
        return fmt.host_detail(answer)
