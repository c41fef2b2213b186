"""`openstack steward repair|rebalance|migration ...`: argument parsing,
what each command sends, and the rows it makes of steward's answers, with
a scripted client in place of the keystoneauth one (the real CLI against a
live steward is tox-compat/tests_functional/test_cli.py)."""

import argparse
import io
import json

from osc_lib import exceptions
import pytest

from steward_nova.osc import format as fmt
from steward_nova.osc import migrations
from steward_nova.osc import rebalance
from steward_nova.osc import repair

NODE = '7c1b1d5e-0000-4000-8000-000000000001'
PLAN = {
    'global': [
        {'action': 'ensure_resource_class', 'class': 'CUSTOM_GOLD'},
        {'action': 'set_flavor_extra_specs', 'flavor_id': 'f-1',
         'flavor_name': 'bm.gold',
         'specs': {'resources:VCPU': '0', 'resources:CUSTOM_GOLD': '1'}}],
    'nodes': [
        {'node': NODE, 'name': 'bm-gold-1', 'class': 'CUSTOM_GOLD',
         'status': 'needs_repair',
         'problems': ['inventory has VCPU, MEMORY_MB'], 'notes': [],
         'steps': [{'action': 'add_custom_inventory', 'provider': NODE,
                    'class': 'CUSTOM_GOLD'},
                   {'action': 'shrink_allocation', 'consumer': 'i-1',
                    'provider': NODE}]},
        {'node': 'n-2', 'name': None, 'class': None, 'status': 'skipped',
         'problems': ['no resource class in Ironic'],
         'notes': ['in maintenance'], 'steps': []}]}
CLEAN = {'global': [], 'nodes': [
    {'node': NODE, 'name': 'bm-gold-1', 'class': 'CUSTOM_GOLD',
     'status': 'clean', 'problems': [], 'notes': [], 'steps': []}]}
ACTION = {'id': 'a-1', 'plan_id': 'p-1', 'seq': 1, 'vm': 'vm-uuid',
          'vm_name': 'web-1', 'source': 'cmp-a1', 'target': 'cmp-a2',
          'az': 'az1', 'ram_mb': 4096, 'disk_gb': 20,
          'block_migration': False, 'reason': 'steal 0.3 over 0.2',
          'state': 'planned', 'outcome': None, 'migration_id': None,
          'bytes_moved': 0, 'error': None, 'updated_at': 10.0}
REB_PLAN = {'id': 'p-1', 'created_at': 5.0, 'state': 'proposed',
            'mode': 'approve', 'summary': {'moves': 1, 'hot_hosts': 1},
            'decided_by': None, 'decided_at': None, 'actions': [ACTION]}


class ScriptedClient:
    """Answers by (method, path) from `answers`; a list answers in turn."""

    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def _answer(self, key):
        a = self.answers[key]
        if isinstance(a, list):
            return a.pop(0)
        if isinstance(a, Exception):
            raise a
        return a

    def get(self, path, params=None):
        self.calls.append(('GET', path, params, None))
        return self._answer(('GET', path))

    def post(self, path, body, params=None):
        self.calls.append(('POST', path, params, body))
        return self._answer(('POST', path))


class FakeApp:
    def __init__(self, answers):
        self.client_manager = argparse.Namespace(
            steward=ScriptedClient(answers))
        self.stderr = io.StringIO()
        self.stdout = io.StringIO()
        self.options = argparse.Namespace()


def run(cls, argv, answers):
    app = FakeApp(answers)
    cmd = cls(app, None)
    parsed = cmd.get_parser('openstack steward').parse_args(argv)
    return app, cmd.take_action(parsed)


def run_full(cls, argv, answers):
    """As cliff runs a command: formatter chosen, output written."""
    app = FakeApp(answers)
    cmd = cls(app, None)
    parsed = cmd.get_parser('openstack steward').parse_args(argv)
    return app, cmd, parsed


def calls(app):
    return app.client_manager.steward.calls


# -- repair ----------------------------------------------------------------

def test_repair_plan_sends_the_selection_and_counts_steps():
    app, (columns, rows) = run(
        repair.PlanRepair, ['--node', NODE, '--node', 'bm-gold-2',
                            '--resource-class', 'GOLD', '--cell', 'cell1'],
        {('POST', '/v1/repair/plans'): PLAN})
    assert calls(app) == [('POST', '/v1/repair/plans', None, {
        'nodes': [NODE, 'bm-gold-2'], 'resource_class': 'GOLD',
        'cell': 'cell1'})]
    assert columns == fmt.REPAIR_PLAN_COLUMNS
    assert rows[0][:5] == ('(global)', None, None, 'needs_repair', 2)
    assert rows[1] == (NODE, 'bm-gold-1', 'CUSTOM_GOLD', 'needs_repair', 2,
                       'inventory has VCPU, MEMORY_MB', '')
    assert rows[2] == ('n-2', None, None, 'skipped', 0,
                       'no resource class in Ironic', 'in maintenance')


def test_repair_plan_without_selection_sends_an_empty_body():
    app, _ = run(repair.PlanRepair, [],
                 {('POST', '/v1/repair/plans'): CLEAN})
    assert calls(app)[0][3] == {}


def test_repair_plan_long_lists_each_step_with_its_object():
    _, (_, rows) = run(repair.PlanRepair, ['--long'],
                       {('POST', '/v1/repair/plans'): PLAN})
    assert rows[0][4] == ('ensure_resource_class CUSTOM_GOLD\n'
                          'set_flavor_extra_specs flavor f-1')
    assert rows[1][4] == ('add_custom_inventory provider %s\n'
                          'shrink_allocation consumer i-1' % NODE)


@pytest.mark.parametrize('argv', [[], ['--all', '--node', NODE]])
def test_repair_apply_needs_exactly_one_kind_of_selection(argv):
    with pytest.raises(exceptions.CommandError, match='--resource-class'):
        run(repair.ApplyRepair, argv, {})


def test_repair_apply_starts_a_run_and_says_how_to_follow_it():
    app, (columns, values) = run(
        repair.ApplyRepair, ['--all'],
        {('POST', '/v1/repair/runs'): {'run_id': 'r-1', 'resumed': False,
                                       'status': 'running', 'nodes': 3}})
    assert calls(app) == [('POST', '/v1/repair/runs', None, {'all': True})]
    shown = dict(zip(columns, values, strict=True))
    assert shown['id'] == 'r-1' and shown['status'] == 'running'
    assert shown['resumed'] is False
    assert 'openstack steward repair status r-1' in app.stderr.getvalue()


def test_repair_apply_with_nothing_to_do():
    app, (columns, values) = run(
        repair.ApplyRepair, ['--resource-class', 'GOLD'],
        {('POST', '/v1/repair/runs'): {'nothing_to_do': True, 'nodes': 2}})
    assert dict(zip(columns, values, strict=True)) == {
        'status': 'nothing_to_do', 'nodes': 2}


def running(writes):
    return {'id': 'r-1', 'status': 'running', 'started_at': 1.0,
            'finished_at': None, 'writes': writes, 'nodes_touched': 1,
            'result': None}


FINISHED = {'id': 'r-1', 'status': 'ok', 'started_at': 1.0,
            'finished_at': 9.0, 'writes': {'done': 4}, 'nodes_touched': 1,
            'result': {'nodes': [{'node': NODE, 'result': 'repaired'}]}}


def test_repair_apply_wait_polls_and_shows_progress(monkeypatch):
    monkeypatch.setattr(repair.time, 'sleep', lambda s: None)
    app, (columns, values) = run(
        repair.ApplyRepair, ['--node', NODE, '--wait',
                             '--poll-interval', '0'],
        {('POST', '/v1/repair/runs'): {'run_id': 'r-1', 'resumed': False,
                                       'status': 'running', 'nodes': 1},
         ('GET', '/v1/repair/runs/r-1'): [
             running({}), running({}), running({'done': 2}), FINISHED]})
    assert [c[1] for c in calls(app)] == ['/v1/repair/runs'] + [
        '/v1/repair/runs/r-1'] * 4
    progress = app.stderr.getvalue().splitlines()
    # one line per change, not per poll
    assert progress == [
        'run r-1: running, 1 node(s) touched, writes none',
        'run r-1: running, 1 node(s) touched, writes done=2',
        'run r-1: ok, 1 node(s) touched, writes done=4']
    shown = dict(zip(columns, values, strict=True))
    assert shown['status'] == 'ok' and shown['writes'] == 'done=4'
    assert shown['results'] == '%s=repaired' % NODE


def test_repair_apply_wait_exits_non_zero_when_the_run_fails(monkeypatch):
    monkeypatch.setattr(repair.time, 'sleep', lambda s: None)
    failed = dict(FINISHED, status='failed',
                  result={'error': 'Placement answered 409'})
    with pytest.raises(exceptions.CommandError,
                       match='repair run r-1 ended failed; `openstack '
                             'steward repair rollback r-1`'):
        app, cmd, parsed = run_full(
            repair.ApplyRepair, ['--all', '--wait', '-f', 'json'],
            {('POST', '/v1/repair/runs'): {'run_id': 'r-1',
                                           'status': 'running'},
             ('GET', '/v1/repair/runs/r-1'): [failed]})
        cmd.run(parsed)
    # what the run ended as is still shown, as asked (-f json)
    assert json.loads(app.stdout.getvalue())['error'] == \
        'Placement answered 409'


def test_repair_wait_gives_up_after_the_timeout_naming_the_run():
    class Clock:
        now = 0.0

        def monotonic(self):
            return self.now

        def sleep(self, s):
            self.now += s

    app = FakeApp({('GET', '/v1/repair/runs/r-1'): running({})})
    with pytest.raises(exceptions.CommandError,
                       match='still running after 5s.*repair status r-1'):
        repair.wait_for_run(app, app.client_manager.steward, 'r-1', 2.0,
                            5.0, clock=Clock())
    assert len(calls(app)) == 4


def test_repair_status_quotes_the_run_id():
    app, (columns, values) = run(
        repair.ShowRepairRun, ['r/1'],
        {('GET', '/v1/repair/runs/r%2F1'): FINISHED})
    assert dict(zip(columns, values, strict=True))['finished_at'] == 9.0


def test_repair_verify_clean_lists_nothing_and_says_so():
    app, (columns, rows) = run(repair.VerifyRepair, ['--resource-class',
                                                     'GOLD'],
                               {('POST', '/v1/repair/plans'): CLEAN})
    assert (columns, rows) == (fmt.REPAIR_PROBLEM_COLUMNS, [])
    assert '1 node(s) checked' in app.stderr.getvalue()


def test_repair_verify_prints_the_problems_then_exits_non_zero():
    app, cmd, parsed = run_full(repair.VerifyRepair, ['-f', 'json'],
                                {('POST', '/v1/repair/plans'): PLAN})
    with pytest.raises(exceptions.CommandError,
                       match='3 problem.s. on 2 node.s. checked'):
        cmd.run(parsed)
    assert json.loads(app.stdout.getvalue()) == [
        {'Object': 'flavor f-1',
         'Problem': 'lacks resources:CUSTOM_GOLD resources:VCPU'},
        {'Object': NODE, 'Problem': 'inventory has VCPU, MEMORY_MB'},
        {'Object': 'n-2', 'Problem': 'no resource class in Ironic'}]


ROLLED = {'run_id': 'r-1', 'status': 'rolled_back', 'failed': 0, 'items': [
    {'object': 'instance i-1', 'action': 'rewrite_instance_flavor',
     'result': 'restored', 'message': None},
    {'object': 'flavor f-1', 'action': 'set_flavor_extra_specs',
     'result': 'unchanged', 'message': None}]}


@pytest.mark.parametrize('argv,placement', [
    (['r-1'], False), (['r-1', '--placement'], True)])
def test_repair_rollback_posts_to_the_runs_rollback_route(argv, placement):
    app, (columns, rows) = run(
        repair.RollbackRepair, argv,
        {('POST', '/v1/repair/runs/r-1/rollback'): ROLLED})
    assert calls(app) == [('POST', '/v1/repair/runs/r-1/rollback', None,
                           {'placement': placement})]
    assert columns == fmt.ROLLBACK_COLUMNS
    assert rows == [('instance i-1', 'rewrite_instance_flavor', 'restored',
                     None),
                    ('flavor f-1', 'set_flavor_extra_specs', 'unchanged',
                     None)]
    assert 'repair run r-1: rolled_back, 2 object(s)' in \
        app.stderr.getvalue()


def test_repair_rollback_scoped_and_flavors_only_reach_the_body():
    app, _ = run(
        repair.RollbackRepair,
        ['r-1', '--node', 'n-1', '--node', 'n-2', '--cell', 'cell1',
         '--flavors-only'],
        {('POST', '/v1/repair/runs/r-1/rollback'): ROLLED})
    assert calls(app) == [('POST', '/v1/repair/runs/r-1/rollback', None,
                           {'placement': False, 'flavors_only': True,
                            'nodes': ['n-1', 'n-2'], 'cell': 'cell1'})]


def test_repair_rollback_with_a_failure_shows_it_and_exits_non_zero():
    failed = dict(ROLLED, status='failed', failed=1, items=[
        {'object': 'instance i-1', 'action': 'rewrite_instance_flavor',
         'result': 'failed', 'message': 'Nova database did not answer'}])
    app, cmd, parsed = run_full(
        repair.RollbackRepair, ['r-1', '-f', 'json'],
        {('POST', '/v1/repair/runs/r-1/rollback'): failed})
    with pytest.raises(exceptions.CommandError,
                       match='1 object.s. could not be restored'):
        cmd.run(parsed)
    assert json.loads(app.stdout.getvalue())[0]['Message'] == \
        'Nova database did not answer'


def test_a_run_that_stopped_shows_its_error():
    columns, values = fmt.repair_run_detail(
        dict(FINISHED, status='failed', result={'error': 'boom'}))
    assert dict(zip(columns, values, strict=True))['error'] == 'boom'


# -- rebalance and migrations ----------------------------------------------

def test_rebalance_plan_list_rows_and_limit():
    app, (columns, rows) = run(
        rebalance.ListRebalancePlan, ['--limit', '5'],
        {('GET', '/v1/rebalance/plans'): {'plans': [REB_PLAN]}})
    assert calls(app)[0][2] == {'limit': 5}
    assert columns == fmt.REBALANCE_PLAN_COLUMNS
    assert rows == [('p-1', 'proposed', 'approve', 5.0, 1, None)]


def test_rebalance_plan_list_without_limit_sends_none():
    app, (_, rows) = run(rebalance.ListRebalancePlan, [],
                         {('GET', '/v1/rebalance/plans'): {'plans': []}})
    assert calls(app)[0][2] == {} and rows == []


def test_rebalance_plan_show_finds_the_plan_with_its_actions():
    _, (columns, values) = run(
        rebalance.ShowRebalancePlan, ['p-1'],
        {('GET', '/v1/rebalance/plans'): {'plans': [REB_PLAN]}})
    shown = dict(zip(columns, values, strict=True))
    assert shown['summary'] == 'hot_hosts=1, moves=1'
    assert shown['actions'] == ('1. web-1 (vm-uuid) cmp-a1 -> cmp-a2 '
                                '[planned]')


def test_rebalance_plan_show_of_an_unknown_plan_names_it():
    with pytest.raises(exceptions.CommandError,
                       match="no rebalance plan 'p-9'.*plan list"):
        run(rebalance.ShowRebalancePlan, ['p-9'],
            {('GET', '/v1/rebalance/plans'): {'plans': [REB_PLAN]}})


@pytest.mark.parametrize('cls,verb,state', [
    (rebalance.ApproveRebalancePlan, 'approve', 'approved'),
    (rebalance.CancelRebalancePlan, 'cancel', 'cancelled')])
def test_rebalance_plan_decisions_post_to_the_plans_route(cls, verb, state):
    decided = dict(REB_PLAN, state=state, decided_by='admin (request x)')
    app, (columns, values) = run(
        cls, ['p-1'], {('POST', '/v1/rebalance/plans/p-1/' + verb): decided})
    assert calls(app) == [('POST', '/v1/rebalance/plans/p-1/' + verb, None,
                           None)]
    assert dict(zip(columns, values, strict=True))['state'] == state


def test_migration_list_filters_by_state_and_limit():
    app, (columns, rows) = run(
        migrations.ListMigration, ['--state', 'planned', '--limit', '3'],
        {('GET', '/v1/migrations'): {'migrations': [ACTION]}})
    assert calls(app)[0][2] == {'state': 'planned', 'limit': 3}
    assert columns == fmt.MIGRATION_COLUMNS
    assert rows == [('a-1', 'p-1', 1, 'vm-uuid', 'web-1', 'cmp-a1',
                     'cmp-a2', 'planned', None, None)]


def test_migration_list_long_adds_the_reason():
    _, (columns, rows) = run(
        migrations.ListMigration, ['--long'],
        {('GET', '/v1/migrations'): {'migrations': [ACTION]}})
    shown = dict(zip(columns, rows[0], strict=True))
    assert shown['Reason'] == 'steal 0.3 over 0.2'


def test_migration_list_refuses_an_unknown_state(capsys):
    app = FakeApp({})
    parser = migrations.ListMigration(app, None).get_parser('x')
    with pytest.raises(SystemExit):
        parser.parse_args(['--state', 'running'])
    assert 'planned' in capsys.readouterr().err
