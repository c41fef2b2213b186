"""`openstack steward evacuation list|show|approve`: host-failure recovery's
incidents (GET /v1/recovery/evacuations, GET .../{id},
POST .../{id}/approve; admin only: they show and drive the fencing and
evacuation of every project's servers)."""

import urllib.parse

from osc_lib.command import command

LIST_COLUMNS = ('ID', 'Host', 'AZ', 'State', 'Released', 'Error')


def evacuation_rows(answer):
    """(columns, rows) of GET /v1/recovery/evacuations, newest first."""
    rows = [(i['id'], i['host'], i['az'], i['state'],
             'yes' if i.get('released_at') else 'no', i.get('error') or '')
            for i in answer.get('evacuations', [])]
    return LIST_COLUMNS, rows


def _vm_text(v):
    where = v.get('target') or '-'
    why = (': ' + v['error']) if v.get('error') else ''
    return '%s (%s) %s -> %s%s' % (v['vm'], v['name'], v['state'], where, why)


def evacuation_detail(incident):
    """(names, values) of one incident: its evidence, VMs and steps."""
    evidence = (incident.get('evidence') or {}).get('evidence') or []
    fields = [
        ('id', incident['id']), ('host', incident['host']),
        ('az', incident['az']), ('state', incident['state']),
        ('mode', incident['mode']),
        ('evidence', '\n'.join('%s: %s (%s s old)' % (
            e['witness'], e['detail'],
            '-' if e.get('age_seconds') is None else
            '%.0f' % e['age_seconds']) for e in evidence)),
        ('approved_by', incident.get('approved_by') or ''),
        ('error', incident.get('error') or ''),
        ('released_by', incident.get('released_by') or ''),
    ]
    if 'vms' in incident:
        fields.append(('vms', '\n'.join(_vm_text(v)
                                        for v in incident['vms'])))
        fields.append(('events', '\n'.join(
            '%s -> %s: %s' % (e['from'], e['to'], e['detail'])
            for e in incident.get('events', []))))
    return tuple(k for k, _ in fields), tuple(v for _, v in fields)


def _path(incident_id, suffix=''):
    return '/v1/recovery/evacuations/%s%s' % (
        urllib.parse.quote(incident_id, safe=''), suffix)


class ListEvacuation(command.Lister):
    """List recovery incidents (dead hosts and their evacuations)."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--state', metavar='<state>',
                            help='Only incidents in this state')
        parser.add_argument('--limit', metavar='<n>', type=int,
                            help='At most this many (steward\'s default 100)')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        params = {}
        if parsed_args.state:
            params['state'] = parsed_args.state
        if parsed_args.limit is not None:
            params['limit'] = parsed_args.limit
        return evacuation_rows(
            client.get('/v1/recovery/evacuations', params=params))


class ShowEvacuation(command.ShowOne):
    """Show one recovery incident: evidence, each VM, every step."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('incident', metavar='<incident-id>',
                            help='Incident id')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        return evacuation_detail(client.get(_path(parsed_args.incident)))


class ApproveEvacuation(command.ShowOne):
    """Approve a suspected incident: fence, force down, evacuate."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('incident', metavar='<incident-id>',
                            help='Incident id')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        return evacuation_detail(
            client.post(_path(parsed_args.incident, '/approve'), None))
