"""An HTTP proxy in front of a real peer that turns faulty on demand.

    proxy = FaultProxy(cloud.placement.url).start()   # .url to hand out
    proxy = FaultProxy(cloud.nova.root_url)  # Nova: proxy.url + '/v2.1'
                                             # is the compute endpoint
    proxy.fail(503, retry_after=1)   # every request answered 503
    proxy.fail(500, times=1)         # the next request only, then healthy
    proxy.fail(409, style='nova',    # only POSTs to a flavor's extra specs
               match=lambda method, path: method == 'POST' and
               path.endswith('/os-extra_specs'))
    proxy.stall(seconds=10)          # hold each request, then forward it
    proxy.heal()                     # forward everything again
    proxy.stop()

Healthy, it forwards method, path, query, headers and body to the target
and hands back the target's status, headers and body unchanged. Faulty,
it answers without asking the target, in Placement's own error format
(placement/util.py json_error_formatter at microversion >= 1.23):
{"errors": [{"status": 503, "title": "Service Unavailable", "detail":
..., "code": "placement.undefined_code", "request_id": "req-..."}]},
with x-openstack-request-id, as webob and Placement's request id
middleware would send; with style='nova', in Nova's wsgi fault format
({"conflictingRequest": {"code": 409, "message": ...}}, "computeFault"
for a 500, ...). A stall waits `seconds` before forwarding (a peer
that answers too late, past the client's timeout).

`log` lists (method, path, what happened) per request: 'forwarded',
'500', '503', 'stalled'.
"""

import http.client
import http.server
import json
import threading
import time
import urllib.parse
import uuid

from harness.httpstub import LoopbackServer

TITLES = {500: 'Internal Server Error', 502: 'Bad Gateway',
          503: 'Service Unavailable', 504: 'Gateway Timeout'}
# Hop-by-hop headers a proxy does not pass on (RFC 9110 7.6.1).
_HOP = {'connection', 'keep-alive', 'proxy-authenticate',
        'proxy-authorization', 'te', 'trailer', 'transfer-encoding',
        'upgrade', 'host', 'content-length'}


# Nova's fault names by status (nova/api/openstack/wsgi.py, webob's
# exceptions through Fault).
NOVA_FAULTS = {400: 'badRequest', 403: 'forbidden', 404: 'itemNotFound',
               409: 'conflictingRequest', 500: 'computeFault',
               503: 'serviceUnavailable'}


def nova_error(status, message):
    """The body Nova's API answers an error with."""
    return {NOVA_FAULTS.get(status, 'computeFault'): {
        'code': status, 'message': message}}


def placement_error(status, detail):
    """The body Placement answers an error with (>= 1.23)."""
    return {'errors': [{
        'status': status, 'title': TITLES.get(status, 'Error'),
        'detail': detail, 'code': 'placement.undefined_code',
        'request_id': 'req-%s' % uuid.uuid4()}]}


class FaultProxy(LoopbackServer):
    def __init__(self, target_url):
        self.target = urllib.parse.urlsplit(target_url)
        self.log = []
        self._lock = threading.Lock()
        self._fault = None
        super().__init__(self._handler())

    # -- what the proxy does ---------------------------------------------

    def fail(self, status, times=None, retry_after=None, style='placement',
             match=None):
        """Answer `status` (500, 503...) to the next `times` requests
        (all, if None) for which match(method, path) holds (every one, if
        None), with Retry-After: `retry_after` seconds if given, in
        Placement's error format or (style='nova') Nova's."""
        with self._lock:
            self._fault = {'status': status, 'times': times,
                           'retry_after': retry_after, 'style': style,
                           'match': match}

    def stall(self, seconds, times=None):
        """Hold the next `times` requests (all, if None) `seconds` before
        forwarding them."""
        with self._lock:
            self._fault = {'stall': seconds, 'times': times}

    def heal(self):
        with self._lock:
            self._fault = None

    def count(self, outcome):
        with self._lock:
            return sum(1 for _, _, o in self.log if o == outcome)

    def _next_fault(self, method, path):
        with self._lock:
            f = self._fault
            if f is None:
                return None
            if f.get('match') and not f['match'](method, path):
                return None
            if f['times'] is not None:
                f['times'] -= 1
                if f['times'] <= 0:
                    self._fault = None
            return dict(f)

    def _record(self, method, path, outcome):
        with self._lock:
            self.log.append((method, path, outcome))

    # -- the handler -----------------------------------------------------

    def _handler(self):
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = 'HTTP/1.1'

            def log_message(self, *args):
                pass

            def _any(self):
                length = int(self.headers.get('Content-Length') or 0)
                body = self.rfile.read(length) if length else None
                fault = proxy._next_fault(self.command, self.path)
                if fault and 'status' in fault:
                    proxy._record(self.command, self.path,
                                  str(fault['status']))
                    return self._error(fault)
                if fault and 'stall' in fault:
                    proxy._record(self.command, self.path, 'stalled')
                    time.sleep(fault['stall'])
                else:
                    proxy._record(self.command, self.path, 'forwarded')
                self._forward(body)

            def _error(self, fault):
                status = fault['status']
                text = ('The fault proxy in front of the service answered '
                        '%d (injected by the test).' % status)
                request_id = 'req-%s' % uuid.uuid4()
                if fault.get('style') == 'nova':
                    payload = nova_error(status, text)
                else:
                    payload = placement_error(status, text)
                    request_id = payload['errors'][0]['request_id']
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header('Content-Type', 'application/json')
                self.send_header('Content-Length', str(len(data)))
                self.send_header('x-openstack-request-id', request_id)
                if fault.get('retry_after') is not None:
                    self.send_header('Retry-After',
                                     str(fault['retry_after']))
                self.end_headers()
                self.wfile.write(data)

            def _forward(self, body):
                t = proxy.target
                conn = http.client.HTTPConnection(t.hostname, t.port,
                                                  timeout=120)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP}
                base = t.path.rstrip('/')
                try:
                    conn.request(self.command, base + self.path, body,
                                 headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    self.send_response(resp.status)
                    for k, v in resp.getheaders():
                        if k.lower() not in _HOP:
                            self.send_header(k, v)
                    self.send_header('Content-Length', str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    conn.close()

            # http.server's dispatch names.
            do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _any  # noqa: N815

        return Handler
