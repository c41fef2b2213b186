"""`openstack steward migration list`: the rebalancer's live migrations
as its journal holds them (GET /v1/migrations)."""

from osc_lib.command import command

from steward_nova.osc import format as fmt


class ListMigration(command.Lister):
    """List the rebalancer's migrations, oldest first."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--state', metavar='<state>', choices=fmt.MIGRATION_STATES,
            help='Only migrations in this state: %s'
                 % ', '.join(fmt.MIGRATION_STATES))
        parser.add_argument(
            '--limit', metavar='<n>', type=int,
            help='At most this many (steward\'s default 500)')
        parser.add_argument(
            '--long', action='store_true', default=False,
            help='Also show AZ, RAM, reason, bytes moved, last update')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        params = {}
        if parsed_args.state:
            params['state'] = parsed_args.state
        if parsed_args.limit is not None:
            params['limit'] = parsed_args.limit
        return fmt.migration_rows(client.get('/v1/migrations',
                                             params=params),
                                  long=parsed_args.long)
