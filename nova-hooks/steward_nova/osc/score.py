"""`openstack steward score`: what-if scheduling. Which hosts would a
flavor with these hints get for this operation, every rejection with its
reason, and the weights, as steward would answer Nova's scheduler now.

The body is built as the Nova shim builds it (docs/callout.md): the flavor
from Nova's compute API, the candidates from the hosts steward knows."""

from osc_lib import exceptions
from osc_lib.command import command

from steward_nova.osc import format as fmt


def find_flavor(client, ref):
    """Nova's flavor by id or name (with its extra specs)."""
    flavors = client.compute_get('/flavors/detail',
                                 params={'is_public': 'None'})['flavors']
    by_id = [f for f in flavors if f.get('id') == ref]
    if by_id:
        return by_id[0]
    by_name = [f for f in flavors if f.get('name') == ref]
    if len(by_name) == 1:
        return by_name[0]
    if by_name:
        raise exceptions.CommandError(
            'Nova has %d flavors named %r; give the flavor id instead (%s)'
            % (len(by_name), ref, ', '.join(f['id'] for f in by_name)))
    raise exceptions.CommandError(
        'Nova has no flavor %r (by id or name) that this user can see; '
        '`openstack flavor list --all` shows them' % ref)


class Score(command.Lister):
    """What-if: the hosts steward would allow for a flavor, with every
    rejection's reason and the allowed hosts' weights (best first)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--flavor', metavar='<flavor>', required=True,
            help='Nova flavor (name or id)')
        parser.add_argument(
            '--operation', metavar='<operation>', default='boot',
            choices=fmt.OPERATIONS,
            help='Scheduling operation: %s (default boot)'
                 % ', '.join(fmt.OPERATIONS))
        parser.add_argument(
            '--hint', metavar='<key=value>', action='append', default=[],
            help='Scheduler hint (repeat for more), e.g. steward_role=web')
        parser.add_argument(
            '--role', metavar='<role>',
            help='The instance\'s role (the hint steward_role)')
        parser.add_argument(
            '--profile', metavar='<profile>',
            help='Scheduling profile (the hint steward_profile); a '
                 'flavor\'s steward:profile extra spec still wins')
        parser.add_argument(
            '--availability-zone', metavar='<az>', dest='az',
            help='Requested availability zone')
        parser.add_argument(
            '--host', metavar='<host>', action='append', default=[],
            dest='hosts',
            help='Candidate host (repeat for more); default: every host '
                 'steward knows')
        parser.add_argument(
            '--server', metavar='<uuid>',
            help='For a move: the instance being moved (steward finds its '
                 'current host and AZ in its own view)')
        parser.add_argument(
            '--current-host', metavar='<host>',
            help='For a move: the host the instance runs on now')
        parser.add_argument(
            '--explain', action='store_true', default=False,
            help='Add each plugin\'s score and weight per allowed host')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        try:
            hints = fmt.parse_hints(parsed_args.hint)
            if parsed_args.role:
                hints['steward_role'] = [parsed_args.role]
            if parsed_args.profile:
                hints['steward_profile'] = [parsed_args.profile]
            flavor = fmt.callout_flavor(find_flavor(client,
                                                    parsed_args.flavor))
            hosts = fmt.callout_hosts(client.get('/v1/hosts'),
                                      parsed_args.hosts)
            body = fmt.callout_body(
                parsed_args.operation, flavor, hosts, hints=hints,
                az=parsed_args.az, instance_uuid=parsed_args.server,
                current_host=parsed_args.current_host)
        except fmt.ArgumentError as e:
            raise exceptions.CommandError(str(e)) from e
        answer = client.post('/v1/filter', body, params={'weigh': 'true'})
        explain = None
        if parsed_args.explain:
            allowed = {(a['host'], a['nodename'])
                       for a in answer.get('allowed', [])}
            explain = {}
            if allowed:
                weigh_body = dict(body, hosts=[
                    h for h in hosts if (h['host'], h['nodename']) in allowed])
                weighed = client.post('/v1/weigh', weigh_body,
                                      params={'explain': 'true'})
                explain = {(w['host'], w['nodename']): w.get('explain')
                           for w in weighed.get('weights', [])}
        # On stderr: stdout stays the table or the -f json document.
        self.app.stderr.write(fmt.score_summary(answer) + '\n')
        return fmt.score_rows(answer, hosts, explain)
