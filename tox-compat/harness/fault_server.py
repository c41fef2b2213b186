"""A loopback HTTP server that answers badly on purpose.

Stands in for a broken steward (or any peer) to test fail-open paths:
garbage, 5xx, answers that break the contract, or no answer in time.
It records every request so a test can assert on headers and bodies, or
that no call was made at all.
"""

import http.server
import json
import time

from harness.httpstub import LoopbackServer


def _allow_all(req):
    return 200, {'allowed': [{'host': h['host'], 'nodename': h['nodename']}
                             for h in req['hosts']], 'rejected': []}


def _weigh_equal(req):
    return 200, {'weights': [{'host': h['host'], 'nodename': h['nodename'],
                              'weight': 1.0} for h in req['hosts']]}


def _named(req):
    """As a steward that predates compact answers: with weigh=true the
    filter answer carries the weights of the allowed hosts too."""
    if req['_call'] == 'weigh':
        return _weigh_equal(req)
    status, answer = _allow_all(req)
    if req['_weigh']:
        answer['weights'] = _weigh_equal(req)[1]['weights']
    return status, answer


def _compact(req, allowed=None, rejected=None, weights=None):
    """A compact filter answer (docs/callout.md); by default every host
    allowed with weight 1.0."""
    n = len(req['hosts'])
    allowed = list(range(n)) if allowed is None else allowed
    answer = {'allowed_indexes': allowed,
              'rejected': [] if rejected is None else rejected}
    if req['_weigh']:
        answer['weights'] = ([1.0] * len(allowed) if weights is None
                             else weights)
    return 200, answer


def _ok(req):
    """As steward answers (docs/callout.md): compact when asked."""
    if req['_call'] == 'filter' and req['_compact']:
        return _compact(req)
    return _named(req)


def _rejected(req, indexes):
    return [{'index': i, 'host': req['hosts'][i]['host'],
             'nodename': req['hosts'][i]['nodename'], 'plugin': 'test',
             'reason': 'rejected by the test'} for i in indexes]


# mode -> (request JSON) -> (status, body: bytes or JSON-able)
MODES = {
    'ok': _ok,
    'named': _named,
    # Compact answers that break the contract (docs/callout.md).
    'compact_descending': lambda req: _compact(
        req, allowed=list(range(len(req['hosts'])))[::-1]),
    'compact_out_of_range': lambda req: _compact(
        req, allowed=[len(req['hosts'])], rejected=_rejected(
            req, range(1, len(req['hosts'])))),
    'compact_missing': lambda req: _compact(req, allowed=[0]),
    'compact_overlap': lambda req: _compact(
        req, allowed=list(range(len(req['hosts']) - 1)),
        rejected=_rejected(req, [0])),
    'compact_short_weights': lambda req: _compact(req, weights=[1.0]),
    'compact_bad_weight': lambda req: _compact(
        req, weights=['heavy'] * len(req['hosts'])),
    'garbage': lambda req: (200, b'<html>proxy error</html>'),
    'empty': lambda req: (200, b''),
    'status500': lambda req: (500, {'error': {
        'code': 'steward.internal', 'message': 'boom'}}),
    'status401': lambda req: (401, {'error': {
        'code': 'steward.unauthorized', 'message': 'no token'}}),
    'not_object': lambda req: (200, [1, 2, 3]),
    'wrong_types': lambda req: (200, {'allowed': 'all', 'weights': 'all'}),
    'missing_hosts': lambda req: (200, {'allowed': [], 'rejected': [],
                                        'weights': []}),
    'unknown_host': lambda req: (200, {
        'allowed': [{'host': 'not-sent', 'nodename': 'not-sent'}],
        'weights': [{'host': 'not-sent', 'nodename': 'not-sent',
                     'weight': 1.0}]}),
    'nan_weight': lambda req: (200, b'{"weights": [' + b','.join(
        b'{"host": "%s", "nodename": "%s", "weight": NaN}' % (
            h['host'].encode(), h['nodename'].encode())
        for h in req['hosts']) + b'], "allowed": []}'),
    'sleep': lambda req: _late(req),
}


def _late(req):
    """A valid answer after the server's `sleep` seconds: past the
    client's timeout, the client has given up by then."""
    time.sleep(req['_sleep'])
    return _allow_all(req) if req['_call'] == 'filter' else _weigh_equal(req)


class FaultServer(LoopbackServer):
    """`mode` names an entry of MODES, or is a callable taking the
    decoded request (plus `_call`: 'filter' or 'weigh', `_weigh` and
    `_compact`: whether the query asks weigh=true, compact=true) and
    returning (status, body)."""

    def __init__(self, mode='garbage', sleep=2.0):
        self.mode = mode
        self.sleep = sleep
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                raw = self.rfile.read(length)
                try:
                    req = json.loads(raw)
                except ValueError:
                    req = {'hosts': []}
                server.requests.append(
                    {'path': self.path, 'headers': dict(self.headers),
                     'body': req})
                req = dict(req)
                req['_call'] = ('filter' if self.path.startswith(
                    '/v1/filter') else 'weigh')
                query = self.path.partition('?')[2]
                req['_weigh'] = 'weigh=true' in query
                req['_compact'] = 'compact=true' in query
                req['_sleep'] = server.sleep
                mode = (server.mode if callable(server.mode)
                        else MODES[server.mode])
                try:
                    status, body = mode(req)
                except OSError:
                    return
                if not isinstance(body, bytes):
                    body = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header('Content-Type', 'application/json')
                    self.send_header('Content-Length', str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    # The client gave up (timeout test): nothing to do.
                    pass

            def log_message(self, *args):
                pass

        super().__init__(Handler, poll_interval=0.05)
