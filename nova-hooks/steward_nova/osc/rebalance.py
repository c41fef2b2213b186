"""`openstack steward rebalance plan list|show|approve|cancel`: the
rebalancer's plans (GET /v1/rebalance/plans,
POST /v1/rebalance/plans/{id}/approve|cancel; deciding is admin only)."""

import urllib.parse

from osc_lib import exceptions
from osc_lib.command import command

from steward_nova.osc import format as fmt


class ListRebalancePlan(command.Lister):
    """List the rebalancer's plans, newest first."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument(
            '--limit', metavar='<n>', type=int,
            help='At most this many plans (steward\'s default 50)')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        params = {}
        if parsed_args.limit is not None:
            params['limit'] = parsed_args.limit
        return fmt.rebalance_plan_rows(
            client.get('/v1/rebalance/plans', params=params))


class ShowRebalancePlan(command.ShowOne):
    """Show one rebalance plan: state, who decided, summary, actions."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('plan', metavar='<plan-id>', help='Plan id')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        answer = client.get('/v1/rebalance/plans', params={'limit': 10000})
        try:
            plan = fmt.find_rebalance_plan(answer, parsed_args.plan)
        except fmt.ArgumentError as e:
            raise exceptions.CommandError(str(e)) from e
        return fmt.rebalance_plan_detail(plan)


class _Decide(command.ShowOne):
    verb = None

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('plan', metavar='<plan-id>', help='Plan id')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        plan = client.post('/v1/rebalance/plans/%s/%s' % (
            urllib.parse.quote(parsed_args.plan, safe=''), self.verb), None)
        return fmt.rebalance_plan_detail(plan)


class ApproveRebalancePlan(_Decide):
    """Approve a proposed rebalance plan: its migrations may start."""
    verb = 'approve'


class CancelRebalancePlan(_Decide):
    """Cancel a rebalance plan: none of its migrations will start."""
    verb = 'cancel'
