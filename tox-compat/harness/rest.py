"""A small JSON-over-HTTP client for talking to peers from tests.

`request` never raises on an HTTP status, so tests can assert on errors;
`call` raises PeerRequestError naming the request, the answer and the
peer's log file when the status is not the expected one.
"""

import json
import urllib.error
import urllib.request

# Peers listen on loopback: never route through an http_proxy from the
# environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PeerRequestError(AssertionError):
    """A peer answered a harness request with an unexpected status."""


class Response:
    def __init__(self, status, body, headers, raw):
        self.status = status
        self.body = body
        self.headers = headers
        self.raw = raw

    def __repr__(self):
        return 'Response(%d, %r)' % (self.status, self.body)


def request(method, url, body=None, headers=None, timeout=60.0):
    """(status, decoded JSON or text, headers) as a Response."""
    data = None
    hdrs = {'Accept': 'application/json'}
    if body is not None:
        data = (body if isinstance(body, bytes)
                else json.dumps(body).encode('utf-8'))
        hdrs['Content-Type'] = 'application/json'
    hdrs.update(headers or {})
    req = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with _OPENER.open(req, timeout=timeout) as resp:
            status, raw, rh = resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as e:
        status, raw, rh = e.code, e.read(), e.headers
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode('utf-8', 'replace')
    return Response(status, payload, rh, raw)


def call(method, url, body=None, headers=None, expect=(200,), log=None,
         timeout=60.0):
    """The Response; raise PeerRequestError unless its status is in
    `expect`. `log` names the peer's log file for the message."""
    if isinstance(expect, int):
        expect = (expect,)
    try:
        resp = request(method, url, body, headers, timeout)
    except OSError as e:
        raise PeerRequestError('%s %s failed: %s%s' % (
            method, url, e, '; see %s' % log if log else '')) from e
    if resp.status not in expect:
        raise PeerRequestError('%s %s answered %d (expected %s): %s%s' % (
            method, url, resp.status, '/'.join(map(str, expect)),
            _short(resp.body), '; see %s' % log if log else ''))
    return resp


def _short(body, limit=2000):
    text = body if isinstance(body, str) else json.dumps(body)
    return text if len(text) <= limit else text[:limit] + '...'
