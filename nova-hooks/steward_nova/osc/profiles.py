"""`openstack steward profile list|show`: the scheduling profiles, their
plugins, weights and parameters."""

from osc_lib import exceptions
from osc_lib.command import command

from steward_nova.osc import format as fmt


class ListProfile(command.Lister):
    """List steward's scheduling profiles."""

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        return fmt.profile_rows(client.get('/v1/profiles'))


class ShowProfile(command.ShowOne):
    """Show one scheduling profile: each plugin's weight and parameters."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('name', metavar='<name>', help='Profile name')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        try:
            profile = fmt.find_profile(client.get('/v1/profiles'),
                                       parsed_args.name)
        except fmt.ArgumentError as e:
            raise exceptions.CommandError(str(e)) from e
        return fmt.profile_detail(profile)
