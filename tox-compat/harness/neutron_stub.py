"""A loopback stand-in for Neutron that knows no ports.

The real Nova API asks Neutron for ports and security groups when it
lists servers; the seeded servers have no ports (info_cache is an empty
NetworkInfo), so every collection answers empty: GET /v2.0/ports ->
{"ports": []}, /v2.0/security-groups -> {"security_groups": []}, and so
on; a single resource is a 404 in Neutron's error shape. Every request is
recorded for tests to inspect.
"""

import http.server
import json
import urllib.parse

from harness.httpstub import LoopbackServer


class NeutronStub(LoopbackServer):
    def __init__(self):
        self.requests = []
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def _answer(self, status, body):
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                path = urllib.parse.urlsplit(self.path).path.rstrip('/')
                stub.requests.append(('GET', self.path))
                parts = [p for p in path.split('/') if p]
                if not parts:
                    return self._answer(200, {'versions': [{
                        'id': 'v2.0', 'status': 'CURRENT', 'links': []}]})
                if parts[0] != 'v2.0':
                    return self._answer(404, {})
                if len(parts) == 2:
                    name = parts[1].removesuffix('.json')
                    return self._answer(200, {name.replace('-', '_'): []})
                if len(parts) == 1:
                    return self._answer(200, {'resources': []})
                return self._answer(404, {'NeutronError': {
                    'type': 'NotFound', 'detail': '',
                    'message': 'no %s %s in the stub' % (
                        parts[1], parts[2])}})

            def do_POST(self):
                length = int(self.headers.get('Content-Length') or 0)
                self.rfile.read(length)
                stub.requests.append(('POST', self.path))
                self._answer(501, {'NeutronError': {
                    'type': 'NotImplemented', 'detail': '',
                    'message': 'the Neutron stub creates nothing'}})

            do_PUT = do_DELETE = do_POST  # noqa: N815 - http.server names

            def log_message(self, *args):
                pass

        super().__init__(Handler)
