"""`openstack steward repair plan|apply|status|verify|rollback`: the
Ironic inventory repair over steward's admin-only repair API
(POST /v1/repair/plans, POST /v1/repair/runs, GET /v1/repair/runs/{id},
POST /v1/repair/runs/{id}/rollback).

`verify` is the plan read as `steward repair verify` reads it (no write)."""

import time
import urllib.parse

from osc_lib import exceptions
from osc_lib.command import command

from steward_nova.osc import format as fmt


def add_selection(parser):
    parser.add_argument(
        '--node', metavar='<uuid|name>', action='append', default=[],
        dest='nodes', help='Ironic node (repeat for more)')
    parser.add_argument(
        '--resource-class', metavar='<class>',
        help='Every node of this Ironic resource class (e.g. GOLD)')
    parser.add_argument(
        '--cell', metavar='<cell>',
        help='Only nodes whose instances are in this Nova cell')
    return parser


def selection_of(parsed_args):
    return fmt.repair_selection(
        parsed_args.nodes, parsed_args.resource_class, parsed_args.cell,
        getattr(parsed_args, 'all', False))


class PlanRepair(command.Lister):
    """Show what is wrong with each Ironic node's inventory and the steps
    that would fix it (changes nothing)."""

    def get_parser(self, prog_name):
        parser = add_selection(super().get_parser(prog_name))
        parser.add_argument(
            '--long', action='store_true', default=False,
            help='List each step instead of counting them')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        plan = client.post('/v1/repair/plans', selection_of(parsed_args))
        return fmt.repair_plan_rows(plan, long=parsed_args.long)


class ApplyRepair(command.ShowOne):
    """Start a repair run (journaled, resumable); with --wait, follow it to
    its end and exit non-zero unless it ends ok."""

    def get_parser(self, prog_name):
        parser = add_selection(super().get_parser(prog_name))
        parser.add_argument(
            '--all', action='store_true', default=False,
            help='Every Ironic node (instead of a selection)')
        parser.add_argument(
            '--wait', action='store_true', default=False,
            help='Poll the run, showing progress on stderr, until it ends')
        parser.add_argument(
            '--poll-interval', metavar='<seconds>', type=float, default=2.0,
            help='Seconds between polls with --wait (default 2)')
        parser.add_argument(
            '--timeout', metavar='<seconds>', type=float, default=3600.0,
            help='Give up waiting after this long (default 3600); the run '
                 'goes on in steward')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        body = selection_of(parsed_args)
        try:
            fmt.require_selection(body)
        except fmt.ArgumentError as e:
            raise exceptions.CommandError(str(e)) from e
        started = client.post('/v1/repair/runs', body)
        if started.get('nothing_to_do'):
            self.app.stderr.write(
                'nothing to repair on the %s selected node(s)\n'
                % started.get('nodes'))
            return ('status', 'nodes'), ('nothing_to_do',
                                         started.get('nodes'))
        if not parsed_args.wait:
            self.app.stderr.write(
                'run %s started; `openstack steward repair status %s` '
                'follows it\n' % (started.get('run_id'),
                                  started.get('run_id')))
            return fmt.repair_run_detail(started)
        run = wait_for_run(self.app, client, started['run_id'],
                           parsed_args.poll_interval, parsed_args.timeout)
        columns, values = fmt.repair_run_detail(run)
        if run.get('status') != 'ok':
            self.produce_output(parsed_args, columns, values)
            raise exceptions.CommandError(
                'repair run %s ended %s; `openstack steward repair rollback '
                '%s` undoes what it wrote' % (run.get('id'), run.get('status'),
                                          run.get('id')))
        return columns, values


def run_path(run_id):
    return '/v1/repair/runs/%s' % urllib.parse.quote(run_id, safe='')


def wait_for_run(app, client, run_id, interval, timeout, clock=time):
    deadline = clock.monotonic() + timeout
    last = None
    while True:
        run = client.get(run_path(run_id))
        line = fmt.repair_progress(run)
        if line != last:
            app.stderr.write(line + '\n')
            last = line
        if run.get('status') != 'running':
            return run
        if clock.monotonic() >= deadline:
            raise exceptions.CommandError(
                'repair run %s still running after %.0fs; it goes on in '
                'steward: `openstack steward repair status %s`'
                % (run_id, timeout, run_id))
        clock.sleep(max(interval, 0.1))


class ShowRepairRun(command.ShowOne):
    """Show a repair run: status, journal writes and each node's result."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('run_id', metavar='<run-id>',
                            help='The run id apply printed')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        return fmt.repair_run_detail(client.get(run_path(parsed_args.run_id)))


class VerifyRepair(command.Lister):
    """Check that Placement, Nova's flavors and both Nova databases agree
    with the custom-class target; lists every problem and exits non-zero
    when there is one (changes nothing)."""

    def get_parser(self, prog_name):
        return add_selection(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        plan = client.post('/v1/repair/plans', selection_of(parsed_args))
        problems = fmt.repair_problems(plan)
        if problems:
            self.produce_output(parsed_args, fmt.REPAIR_PROBLEM_COLUMNS,
                                problems)
            raise exceptions.CommandError(
                '%d problem(s) on %d node(s) checked; `openstack steward '
                'repair apply` fixes them' % (len(problems),
                                              len(plan.get('nodes') or [])))
        self.app.stderr.write(
            '%d node(s) checked: Placement, Nova\'s flavors and both Nova '
            'databases agree with the custom-class target\n'
            % len(plan.get('nodes') or []))
        return fmt.REPAIR_PROBLEM_COLUMNS, []


class RollbackRepair(command.Lister):
    """Put back what a repair run changed (embedded flavors, request specs,
    flavor extra specs; Placement too with --placement), newest write
    first, for the run's nodes --node, --resource-class or --cell select
    (all if none); exits non-zero if any object could not be restored.
    Steward refuses to put Nova's flavors back while the run's Placement
    writes stay, unless --flavors-only asks for exactly that."""

    def get_parser(self, prog_name):
        parser = add_selection(super().get_parser(prog_name))
        parser.add_argument('run_id', metavar='<run-id>',
                            help='The run id apply printed')
        parser.add_argument(
            '--placement', action='store_true', default=False,
            help='Also put back inventories and allocations in Placement')
        parser.add_argument(
            '--flavors-only', action='store_true', default=False,
            help="Put back Nova's flavor copies only although the run "
                 'changed Placement: the instances then ask for VCPU, '
                 'MEMORY_MB and DISK_GB while their allocations stay '
                 'custom-class only')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        body = {'placement': parsed_args.placement}
        if parsed_args.flavors_only:
            body['flavors_only'] = True
        if parsed_args.nodes:
            body['nodes'] = parsed_args.nodes
        if parsed_args.resource_class:
            body['resource_class'] = parsed_args.resource_class
        if parsed_args.cell:
            body['cell'] = parsed_args.cell
        answer = client.post(run_path(parsed_args.run_id) + '/rollback',
                             body)
        columns, rows = fmt.rollback_rows(answer)
        if answer.get('failed'):
            self.produce_output(parsed_args, columns, rows)
            raise exceptions.CommandError(
                'rollback of repair run %s: %s object(s) could not be '
                'restored (see Message); fix the cause and run it again'
                % (parsed_args.run_id, answer['failed']))
        self.app.stderr.write('repair run %s: %s, %d object(s)\n' % (
            parsed_args.run_id, answer.get('status'), len(rows)))
        return columns, rows
