"""Pure pieces of the `openstack steward` commands: rows and columns from
steward's answers, argument parsing, and the what-if callout body built
from a Nova flavor and the hosts steward knows. No I/O here."""

import uuid

OPERATIONS = ('boot', 'live_migrate', 'migrate', 'resize', 'evacuate',
              'unshelve', 'rebuild', 'move')

HOST_COLUMNS = ('Host', 'AZ', 'Steal', 'Load5', 'vCPUs', 'Fresh', 'Source')
HOST_LONG_COLUMNS = HOST_COLUMNS + ('CPU Use', 'Observed At', 'Age Seconds')
_HOST_KEYS = {'Host': 'host', 'AZ': 'az', 'Steal': 'steal',
              'Load5': 'load5', 'vCPUs': 'vcpus', 'Fresh': 'fresh',
              'Source': 'source', 'CPU Use': 'cpu_use',
              'Observed At': 'observed_at', 'Age Seconds': 'age_seconds'}

PROFILE_COLUMNS = ('Name', 'Default', 'Plugins', 'Description')

SCORE_COLUMNS = ('Rank', 'Host', 'Nodename', 'AZ', 'Allowed', 'Weight',
                 'Plugin', 'Reason')
SCORE_EXPLAIN_COLUMN = 'Scores'


class ArgumentError(ValueError):
    """A command-line value that cannot be used; the message says which
    and what to write instead."""


def _round(value, digits=4):
    if isinstance(value, float):
        return round(value, digits)
    return value


def host_rows(answer, long=False):
    """(columns, rows) of GET /v1/hosts."""
    columns = HOST_LONG_COLUMNS if long else HOST_COLUMNS
    rows = [tuple(_round(h.get(_HOST_KEYS[c])) for c in columns)
            for h in answer.get('hosts', [])]
    return columns, rows


def host_detail(answer):
    """(columns, values) of GET /v1/hosts/{name}: the host's facts, its
    VMs by role, and the peak hour of its steal profile."""
    fields = [('host', answer.get('host'))]
    for key in ('az', 'steal', 'load5', 'cpu_use', 'vcpus', 'fresh',
                'source', 'observed_at', 'age_seconds'):
        fields.append((key, _round(answer.get(key))))
    roles = answer.get('roles') or {}
    fields.append(('roles', ', '.join('%s=%s' % kv
                                      for kv in sorted(roles.items()))))
    fields.append(('vms', ', '.join(answer.get('vms') or [])))
    profile = answer.get('steal_profile') or {}
    fields.append(('steal_peak_hour', profile.get('peak')))
    fields.append(('steal_profile_weeks', profile.get('weeks')))
    return tuple(k for k, _ in fields), tuple(v for _, v in fields)


def _plugins_text(plugins):
    return ', '.join('%s (weight %s)' % (p['name'], _round(p.get('weight')))
                     for p in plugins)


def profile_rows(answer):
    """(columns, rows) of GET /v1/profiles, sorted by name."""
    rows = [(p['name'], p.get('default', False),
             _plugins_text(p.get('plugins', [])), p.get('description', ''))
            for p in sorted(answer.get('profiles', []),
                            key=lambda p: p['name'])]
    return PROFILE_COLUMNS, rows


def find_profile(answer, name):
    """The profile `name` of GET /v1/profiles; ArgumentError naming the
    profiles there are when steward has none of that name."""
    for p in answer.get('profiles', []):
        if p['name'] == name:
            return p
    names = sorted(p['name'] for p in answer.get('profiles', []))
    raise ArgumentError('steward has no profile %r; it has: %s'
                        % (name, ', '.join(names) or 'none'))


def profile_detail(profile):
    """(columns, values) of one profile: one field per plugin holding its
    weight and parameters."""
    fields = [('name', profile['name']),
              ('default', profile.get('default', False)),
              ('description', profile.get('description', ''))]
    for p in profile.get('plugins', []):
        params = p.get('params') or {}
        text = 'weight %s' % _round(p.get('weight'))
        if params:
            text += '; ' + ', '.join('%s=%s' % (k, params[k])
                                     for k in sorted(params))
        fields.append(('plugin %s' % p['name'], text))
    return tuple(k for k, _ in fields), tuple(v for _, v in fields)


def parse_hints(items):
    """`key=value` strings into scheduler hints, as Nova stores them
    (a list per key; a key given twice keeps both values)."""
    hints = {}
    for item in items or ():
        key, sep, value = item.partition('=')
        key = key.strip()
        if not sep or not key:
            raise ArgumentError(
                '--hint %r is not KEY=VALUE (e.g. --hint steward_role=web)'
                % item)
        hints.setdefault(key, []).append(value.strip())
    return hints


def _int(value, default=0):
    """Nova answers swap as "" when there is none."""
    if value in (None, ''):
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def callout_flavor(nova_flavor):
    """The callout's flavor from Nova's flavor (GET /flavors/{id} at
    2.61+): sizes and extra specs; Nova's `ram`/`disk` are memory_mb and
    root_gb."""
    f = nova_flavor
    return {'name': f.get('name'),
            'vcpus': _int(f.get('vcpus')),
            'memory_mb': _int(f.get('ram')),
            'root_gb': _int(f.get('disk')),
            'ephemeral_gb': _int(f.get('OS-FLV-EXT-DATA:ephemeral')),
            'swap': _int(f.get('swap')),
            'extra_specs': dict(f.get('extra_specs') or {})}


def callout_hosts(hosts_answer, only=None):
    """Candidate hosts for a what-if: every host steward knows (GET
    /v1/hosts), or those named in `only` (ArgumentError naming any host
    steward does not know). Steward fills in what it knows of each."""
    known = {h['host']: h for h in hosts_answer.get('hosts', [])}
    names = list(only) if only else sorted(known)
    missing = [n for n in names if n not in known]
    if missing:
        raise ArgumentError(
            'steward knows no host %s; `openstack steward host list` shows '
            'those it knows' % ', '.join(repr(n) for n in missing))
    if not names:
        raise ArgumentError(
            'steward knows no host yet (no telemetry push and no Nova '
            'refresh): nothing to score')
    out = []
    for n in names:
        h = known[n]
        entry = {'host': n, 'nodename': n, 'az': h.get('az')}
        if h.get('vcpus'):
            entry['vcpus_total'] = h['vcpus']
        out.append(entry)
    return out


def callout_body(operation, flavor, hosts, hints=None, az=None,
                 instance_uuid=None, current_host=None, project_id=None):
    """The body of POST /v1/filter for a what-if (docs/callout.md)."""
    if operation not in OPERATIONS:
        raise ArgumentError('--operation %r is not one of %s'
                            % (operation, ', '.join(OPERATIONS)))
    instance = {'uuid': instance_uuid or str(uuid.uuid4()),
                'flavor': flavor,
                'scheduler_hints': hints or {}}
    if az:
        instance['requested_az'] = az
    if current_host:
        instance['current_host'] = current_host
    if project_id:
        instance['project_id'] = project_id
    body = {'operation': operation, 'instance': instance, 'hosts': hosts}
    if current_host:
        body['ignore_hosts'] = [current_host]
    return body


def _explain_text(explain):
    return ', '.join('%s=%s*%s' % (name, _round(part.get('score'), 3),
                                   _round(part.get('weight'), 3))
                     for name, part in sorted((explain or {}).items()))


def score_rows(filter_answer, hosts, explain=None):
    """(columns, rows) of a what-if: allowed hosts first, best weight
    first and ranked 1..n, then every rejected host with the plugin that
    rejected it and why. `hosts` gives each host's AZ; `explain` maps
    (host, nodename) to the per-plugin parts of POST /v1/weigh?explain."""
    az = {(h['host'], h.get('nodename', h['host'])): h.get('az')
          for h in hosts}
    weights = {(w['host'], w['nodename']): w['weight']
               for w in filter_answer.get('weights') or []}
    allowed = [(a['host'], a['nodename'])
               for a in filter_answer.get('allowed', [])]
    allowed.sort(key=lambda k: (-weights.get(k, 0.0), k))
    columns = SCORE_COLUMNS + ((SCORE_EXPLAIN_COLUMN,) if explain is not None
                               else ())
    rows = []
    for rank, key in enumerate(allowed, 1):
        row = (rank, key[0], key[1], az.get(key), True,
               _round(weights.get(key)), '', '')
        if explain is not None:
            row += (_explain_text(explain.get(key)),)
        rows.append(row)
    for r in filter_answer.get('rejected', []):
        key = (r['host'], r['nodename'])
        row = (None, key[0], key[1], az.get(key), False, None,
               r.get('plugin', ''), r.get('reason', ''))
        if explain is not None:
            row += ('',)
        rows.append(row)
    return columns, rows


def score_summary(filter_answer):
    """One line for stderr: profile, role and whether the answer is
    degraded (and why), so a table or JSON on stdout stays parseable."""
    line = 'profile %s, role %s' % (filter_answer.get('profile'),
                                    filter_answer.get('role') or 'none')
    if filter_answer.get('degraded'):
        line += '; DEGRADED: ' + '; '.join(
            filter_answer.get('degraded_reasons') or ['no reason given'])
    return line


# -- repair (POST /v1/repair/plans, /v1/repair/runs) -------------------------

REPAIR_PLAN_COLUMNS = ('Node', 'Name', 'Class', 'Status', 'Steps',
                       'Problems', 'Notes')
REPAIR_PROBLEM_COLUMNS = ('Object', 'Problem')


def repair_selection(nodes=None, resource_class=None, cell=None, all=False):
    """The body of POST /v1/repair/plans|runs from the CLI's flags (as
    `steward repair` takes them). Node names or uuids are kept as given."""
    body = {}
    nodes = [n.strip() for n in nodes or () if n.strip()]
    if nodes:
        body['nodes'] = nodes
    if resource_class:
        body['resource_class'] = resource_class
    if cell:
        body['cell'] = cell
    if all:
        body['all'] = True
    return body


def require_selection(body):
    """An apply changes Nova's data: it needs --node, --resource-class,
    --cell or --all, and not --all with another."""
    selected = any(k in body for k in ('nodes', 'resource_class', 'cell'))
    if selected == bool(body.get('all')):
        raise ArgumentError(
            'repair apply needs which nodes: --node <uuid|name> (repeat), '
            '--resource-class <class>, --cell <cell>, or --all (not --all '
            'with the others); `openstack steward repair plan` shows them')


def _step_text(step):
    return '%s %s' % (step.get('action', '?'), _step_object(step))


def _step_object(step):
    for key in ('flavor_id', 'instance', 'consumer', 'provider', 'class'):
        if step.get(key):
            prefix = {'flavor_id': 'flavor ', 'instance': 'instance ',
                      'provider': 'provider ', 'consumer': 'consumer '}
            return prefix.get(key, '') + str(step[key])
    return ''


def repair_plan_rows(plan, long=False):
    """(columns, rows) of POST /v1/repair/plans: one row per node with its
    status and how many steps fix it (each step with --long); the
    run-wide steps (resource classes, flavors) as a first row `(global)`."""
    rows = []
    glob = plan.get('global') or []
    if glob:
        rows.append(('(global)', None, None, 'needs_repair',
                     '\n'.join(_step_text(s) for s in glob) if long
                     else len(glob), '', ''))
    for n in plan.get('nodes') or []:
        steps = n.get('steps') or []
        rows.append((n.get('node'), n.get('name'), n.get('class'),
                     n.get('status'),
                     '\n'.join(_step_text(s) for s in steps) if long
                     else len(steps),
                     '; '.join(n.get('problems') or []),
                     '; '.join(n.get('notes') or [])))
    return REPAIR_PLAN_COLUMNS, rows


def repair_problems(plan):
    """What `steward repair verify` reports, from a plan: each flavor
    that lacks its custom-class extra specs, then each node's problems.
    Empty when Placement, Nova's flavors and both databases agree."""
    out = []
    for step in plan.get('global') or []:
        if step.get('action') == 'set_flavor_extra_specs':
            out.append(('flavor %s' % step.get('flavor_id'),
                        'lacks %s' % ' '.join(sorted(step.get('specs')
                                                     or {}))))
    for n in plan.get('nodes') or []:
        for p in n.get('problems') or []:
            out.append((n.get('node'), p))
    return out


def repair_run_detail(run):
    """(columns, values) of GET /v1/repair/runs/{id} (or of the 202 that
    started it): status, journal writes by state, per-node results."""
    writes = run.get('writes') or {}
    result = run.get('result')
    nodes = result.get('nodes') if isinstance(result, dict) else None
    fields = [('id', run.get('id') or run.get('run_id')),
              ('status', run.get('status')),
              ('started_at', run.get('started_at')),
              ('finished_at', run.get('finished_at')),
              ('nodes_touched', run.get('nodes_touched')),
              ('writes', ', '.join('%s=%s' % kv
                                   for kv in sorted(writes.items()))),
              ('results', ', '.join(
                  '%s=%s' % (n.get('node'), n.get('result'))
                  for n in nodes or [] if isinstance(n, dict)))]
    if isinstance(result, dict) and result.get('error'):
        fields.append(('error', result['error']))
    if 'resumed' in run:
        fields.append(('resumed', run['resumed']))
    return tuple(k for k, _ in fields), tuple(v for _, v in fields)


ROLLBACK_COLUMNS = ('Object', 'Action', 'Result', 'Message')


def rollback_rows(answer):
    """(columns, rows) of POST /v1/repair/runs/{id}/rollback, in the order
    steward restored them (newest write first)."""
    rows = [(i.get('object'), i.get('action'), i.get('result'),
             i.get('message')) for i in answer.get('items') or []]
    return ROLLBACK_COLUMNS, rows


def repair_progress(run):
    """One stderr line while an apply runs."""
    writes = run.get('writes') or {}
    return 'run %s: %s, %s node(s) touched, writes %s' % (
        run.get('id'), run.get('status'), run.get('nodes_touched', 0),
        ', '.join('%s=%s' % kv for kv in sorted(writes.items())) or 'none')


# -- rebalance (GET /v1/rebalance/plans, /v1/migrations) --------------------

REBALANCE_PLAN_COLUMNS = ('ID', 'State', 'Mode', 'Created At', 'Actions',
                          'Decided By')
MIGRATION_COLUMNS = ('ID', 'Plan', 'Seq', 'Server', 'Name', 'Source',
                     'Target', 'State', 'Outcome', 'Error')
MIGRATION_LONG_COLUMNS = MIGRATION_COLUMNS + ('AZ', 'RAM MB', 'Reason',
                                              'Bytes Moved', 'Updated At')
_MIGRATION_KEYS = {'ID': 'id', 'Plan': 'plan_id', 'Seq': 'seq',
                   'Server': 'vm', 'Name': 'vm_name', 'Source': 'source',
                   'Target': 'target', 'State': 'state',
                   'Outcome': 'outcome', 'Error': 'error', 'AZ': 'az',
                   'RAM MB': 'ram_mb', 'Reason': 'reason',
                   'Bytes Moved': 'bytes_moved',
                   'Updated At': 'updated_at'}
MIGRATION_STATES = ('planned', 'approved', 'draining', 'migrating',
                    'rejoining', 'done', 'failed', 'aborted')


def rebalance_plan_rows(answer):
    """(columns, rows) of GET /v1/rebalance/plans, newest first as
    steward answers."""
    rows = [(p.get('id'), p.get('state'), p.get('mode'),
             p.get('created_at'), len(p.get('actions') or []),
             p.get('decided_by')) for p in answer.get('plans', [])]
    return REBALANCE_PLAN_COLUMNS, rows


def find_rebalance_plan(answer, plan_id):
    for p in answer.get('plans', []):
        if p.get('id') == plan_id:
            return p
    raise ArgumentError(
        'steward has no rebalance plan %r; `openstack steward rebalance '
        'plan list` shows them' % plan_id)


def _action_text(a):
    return '%s. %s (%s) %s -> %s [%s]' % (
        a.get('seq'), a.get('vm_name') or a.get('vm'), a.get('vm'),
        a.get('source'), a.get('target'), a.get('state'))


def rebalance_plan_detail(plan):
    """(columns, values) of one plan: its state, who decided, the
    planner's summary and each action (server source -> target)."""
    summary = plan.get('summary')
    if isinstance(summary, dict):
        summary = ', '.join('%s=%s' % (k, summary[k])
                            for k in sorted(summary))
    fields = [('id', plan.get('id')), ('state', plan.get('state')),
              ('mode', plan.get('mode')),
              ('created_at', plan.get('created_at')),
              ('decided_by', plan.get('decided_by')),
              ('decided_at', plan.get('decided_at')),
              ('summary', summary),
              ('actions', '\n'.join(_action_text(a)
                                    for a in plan.get('actions') or []))]
    return tuple(k for k, _ in fields), tuple(v for _, v in fields)


def migration_rows(answer, long=False):
    """(columns, rows) of GET /v1/migrations, oldest first."""
    columns = MIGRATION_LONG_COLUMNS if long else MIGRATION_COLUMNS
    rows = [tuple(m.get(_MIGRATION_KEYS[c]) for c in columns)
            for m in answer.get('migrations', [])]
    return columns, rows
