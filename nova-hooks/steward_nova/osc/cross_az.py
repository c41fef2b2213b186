"""`openstack steward cross az grant|list|revoke`: an admin's leave for one
move of one server into another AZ (POST /v1/vms/{uuid}/cross-az,
GET /v1/cross-az-grants, POST /v1/cross-az-grants/{id}/revoke; admin only).
Steward keeps every moving server in its AZ; the grant binds the server's
next move to the AZ it names, for that one request."""

import urllib.parse
import uuid

from osc_lib import exceptions
from osc_lib.command import command

LIST_COLUMNS = ('ID', 'Server', 'To AZ', 'State', 'Granted By', 'Reason')
FIELDS = ('id', 'vm', 'to_az', 'state', 'granted_by', 'reason',
          'created_at', 'expires_at', 'used_at', 'revoked_at')


def grant_rows(answer):
    """(columns, rows) of GET /v1/cross-az-grants, newest first."""
    rows = [(g['id'], g['vm'], g['to_az'], g['state'], g['granted_by'],
             g['reason']) for g in answer.get('grants', [])]
    return LIST_COLUMNS, rows


def grant_detail(grant):
    return FIELDS, tuple(grant.get(f) for f in FIELDS)


def server_id(client, name_or_id):
    """The uuid of a server given by uuid or by exact name (every project:
    an admin's command)."""
    try:
        return str(uuid.UUID(name_or_id))
    except ValueError:
        pass
    found = client.compute_get('/servers', params={
        'name': '^%s$' % name_or_id, 'all_tenants': 1})['servers']
    if len(found) != 1:
        raise exceptions.CommandError(
            '%d servers are named %r; give the server\'s id' % (
                len(found), name_or_id))
    return found[0]['id']


class GrantCrossAz(command.ShowOne):
    """Let the next move of one server leave its AZ, into --to-az."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('server', metavar='<server>',
                            help='Server (name or id)')
        parser.add_argument('--to-az', metavar='<az>', required=True,
                            help='The AZ the next move may go to')
        parser.add_argument('--reason', metavar='<text>', required=True,
                            help='Why (kept with the grant and logged)')
        parser.add_argument('--ttl', metavar='<seconds>', type=float,
                            help='How long the grant waits for the move '
                                 '(60 to 86400; steward\'s default 900)')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        vm = server_id(client, parsed_args.server)
        body = {'to_az': parsed_args.to_az, 'reason': parsed_args.reason}
        if parsed_args.ttl is not None:
            body['ttl_seconds'] = parsed_args.ttl
        return grant_detail(client.post(
            '/v1/vms/%s/cross-az' % urllib.parse.quote(vm, safe=''), body))


class ListCrossAz(command.Lister):
    """List cross-AZ grants, newest first."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('--limit', metavar='<n>', type=int,
                            help='At most this many (steward\'s default 100)')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        params = {}
        if parsed_args.limit is not None:
            params['limit'] = parsed_args.limit
        return grant_rows(client.get('/v1/cross-az-grants', params=params))


class RevokeCrossAz(command.ShowOne):
    """Revoke an open cross-AZ grant before a move uses it."""

    def get_parser(self, prog_name):
        parser = super().get_parser(prog_name)
        parser.add_argument('grant', metavar='<grant-id>', help='Grant id')
        return parser

    def take_action(self, parsed_args):
        client = self.app.client_manager.steward
        return grant_detail(client.post(
            '/v1/cross-az-grants/%s/revoke' % urllib.parse.quote(
                parsed_args.grant, safe=''), None))
