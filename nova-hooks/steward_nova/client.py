"""HTTP side of the callout: one kept-alive session, the POST, the checks.

Anything that is not a well-formed 200 answer covering exactly the hosts
that were sent raises CalloutError; the filter and the weigher turn that
into "fail open" and one rate-limited warning.
"""

import json
import math
import os
import threading

from oslo_log import log as logging
import requests

from steward_nova import body as body_mod
from steward_nova import conf as steward_conf
from steward_nova import ratelimit

CONF = steward_conf.CONF
LOG = logging.getLogger(__name__)

WARNER = ratelimit.RateLimitedWarner(
    LOG, lambda: CONF.steward.warn_interval)


class CalloutError(Exception):
    """Steward gave no usable answer. `kind` groups warnings.

    Internal to steward_nova: the filter and the weigher catch it, it never
    reaches Nova.
    """

    def __init__(self, kind, detail):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


_session = None
_session_pid = None
_session_lock = threading.Lock()


def session():
    """The process-wide Session, so connections to steward are reused.

    Made lazily and again after a fork: nova-scheduler workers must not
    share one socket with their parent.
    """
    global _session, _session_pid
    pid = os.getpid()
    if _session is None or _session_pid != pid:
        with _session_lock:
            if _session is None or _session_pid != pid:
                s = requests.Session()
                # Steward sits beside the scheduler: skip the per-request
                # proxy and .netrc lookups requests does from the
                # environment (they cost more than the call on loopback).
                s.trust_env = False
                s.headers.update({
                    'Content-Type': 'application/json',
                    'Accept': 'application/json',
                    'User-Agent': 'steward-nova/0.1',
                })
                _session, _session_pid = s, pid
    return _session


class _TokenFile:
    """The token of [steward] token_file, re-read when the file changes."""

    def __init__(self):
        self._key = None
        self._token = None

    def get(self, path):
        try:
            st = os.stat(path)
            key = (path, st.st_mtime_ns, st.st_size)
            if key != self._key:
                with open(path, encoding='utf-8') as f:
                    self._token = f.read().strip()
                self._key = key
        except OSError as e:
            raise CalloutError(
                'config',
                'cannot read [steward] token_file %s (%s); fix its path or '
                'permissions for the nova-scheduler user' % (path, e)
            ) from e
        if not self._token:
            raise CalloutError(
                'config', '[steward] token_file %s is empty; write the '
                'steward token with the reader role into it' % path)
        return self._token


_TOKEN_FILE = _TokenFile()


def token():
    if CONF.steward.token_file:
        return _TOKEN_FILE.get(CONF.steward.token_file)
    return CONF.steward.token or None


def request_id(spec_obj):
    """Nova's request id, so steward's log lines join the scheduler's."""
    ctx = getattr(spec_obj, '_context', None)
    return getattr(ctx, 'request_id', None) if ctx is not None else None


def url(path):
    return CONF.steward.endpoint.rstrip('/') + path


def post(path, data, req_id=None):
    """POST the JSON bytes `data`; return the decoded 200 answer (a dict)."""
    headers = {}
    tok = token()
    if tok:
        headers['Authorization'] = 'Bearer ' + tok
    if req_id:
        headers['X-OpenStack-Request-ID'] = req_id
    timeout = CONF.steward.timeout
    try:
        resp = session().post(url(path), data=data, headers=headers,
                              timeout=timeout)
        raw = resp.content
    except requests.Timeout as e:
        raise CalloutError('timeout', 'no answer within %ss' % timeout) from e
    except requests.RequestException as e:
        raise CalloutError(
            'connection', '%s: %s' % (type(e).__name__, e)) from e
    if resp.status_code != 200:
        raise CalloutError('bad_status', 'HTTP %d %s' % (
            resp.status_code, _error_summary(resp)))
    try:
        # From bytes: json detects UTF-8 itself, quicker than resp.json().
        answer = json.loads(raw)
    except ValueError as e:
        raise CalloutError('malformed', 'the 200 answer is not JSON: %r'
                           % raw[:200]) from e
    if not isinstance(answer, dict):
        raise CalloutError('malformed', 'the answer is a %s, not an object'
                           % type(answer).__name__)
    return answer


def _error_summary(resp):
    """`code: message` of steward's error body, else the start of it."""
    try:
        err = resp.json()['error']
        text = '%s: %s' % (err.get('code'), err.get('message'))
        if err.get('field'):
            text += ' (field %s)' % err['field']
        return text
    except Exception:
        return repr(resp.content[:200])


def _bad_entry(entry, what):
    return CalloutError('malformed', 'an answer entry has no valid %s: %r'
                        % (what, entry))


def _entries(answer, name, required=True):
    entries = answer.get(name)
    if entries is None and not required:
        return []
    if not isinstance(entries, list):
        raise CalloutError('malformed', 'the answer has no "%s" list' % name)
    return entries


def _keys(entries):
    """(host, nodename) of each entry; nodename defaults to host.

    Inline rather than a function per entry: answers carry every host.
    """
    keys = []
    for e in entries:
        try:
            host = e['host']
            node = e.get('nodename') or host
        except (TypeError, KeyError, AttributeError):
            raise _bad_entry(e, 'host') from None
        if type(host) is not str or not host or type(node) is not str:
            raise _bad_entry(e, 'host/nodename')
        keys.append((host, node))
    return keys


def check_filter_answer(answer, sent):
    """Allowed keys; `sent` is the set of (host, nodename) in the request."""
    allowed = set(_keys(_entries(answer, 'allowed')))
    rejected = set(_keys(_entries(answer, 'rejected', required=False)))
    unknown = (allowed | rejected) - sent
    if unknown:
        raise CalloutError('malformed', 'the answer names hosts that were '
                           'not sent: %s' % sorted(unknown)[:5])
    missing = sent - allowed - rejected
    if missing:
        raise CalloutError('malformed', 'the answer leaves %d host(s) '
                           'neither allowed nor rejected, e.g. %s'
                           % (len(missing), sorted(missing)[:5]))
    return allowed


def check_weigh_answer(answer, sent_keys):
    """Weights in the order of `sent_keys` (a list of (host, nodename))."""
    entries = _entries(answer, 'weights')
    keys = _keys(entries)
    result = []
    for e in entries:
        w = e.get('weight')
        t = type(w)
        if t is int:
            w = float(w)
        elif t is not float or not math.isfinite(w):
            raise _bad_entry(e, 'finite weight')
        result.append(w)
    if keys == sent_keys:
        # The contract keeps the request's order: nothing to match.
        return result
    weights = dict(zip(keys, result, strict=True))
    if len(keys) != len(sent_keys) or weights.keys() != set(sent_keys):
        raise CalloutError('malformed', 'the answer weighs %d host(s), '
                           '%d were sent' % (len(weights), len(sent_keys)))
    return [weights[k] for k in sent_keys]


def call(path, host_states, spec_obj):
    """Encode the body, POST it. Returns (answer, sent keys in order)."""
    try:
        encoded = body_mod.encode_hosts(
            host_states, CONF.steward.send_instance_uuids)
        data = body_mod.encode(spec_obj, [frag for _, frag in encoded])
    except body_mod.BodyError as e:
        raise CalloutError('shim_error', str(e)) from e
    except (TypeError, ValueError) as e:
        raise CalloutError(
            'shim_error', 'the request body is not valid JSON: %s' % e
        ) from e
    return post(path, data, request_id(spec_obj)), [k for k, _ in encoded]


def warn_failure(kind, detail, call_name, req_id, action):
    """One warning per kind per [steward] warn_interval, saying what to do."""
    WARNER.warn(
        kind,
        'Steward callout %(call)s to %(url)s failed (%(kind)s: %(detail)s) '
        'for request %(req)s; %(action)s. Check that steward runs and '
        'answers at [steward] endpoint within [steward] timeout '
        '(%(timeout)ss) and that the token has the reader role; steward\'s '
        'log shows the request id.',
        {'call': call_name, 'url': url(call_name), 'kind': kind,
         'detail': detail, 'req': req_id or '(no request id)',
         'action': action, 'timeout': CONF.steward.timeout})
