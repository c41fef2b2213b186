"""HTTP side of the callout: kept-alive connections, the POST, the checks.

Anything that is not a well-formed 200 answer covering exactly the hosts
that were sent raises CalloutError; the filter and the weigher turn that
into "fail open" and one rate-limited warning.
"""

import http.client
import json
import math
import operator
import os
import select
import ssl
import threading
import urllib.parse

from oslo_log import log as logging

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

    def __init__(self, kind, detail, code=None):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        # Steward's error code, for an error answer.
        self.code = code


# -- Transport ------------------------------------------------------------
#
# http.client on kept-alive connections rather than requests: on loopback
# requests' own machinery (adapters, hooks, cookie jar, header merging,
# urllib3's pool) cost more per call than steward's answer to 100 hosts
# (measured against steward: 0.65 ms instead of 1.3-1.6 ms per call at 100
# hosts, 4.7 instead of 6.1 ms at 1,000).

# On a callout's 200: steward keeps the hosts sent in full for reference.
HOST_CACHE_HEADER = 'X-Steward-Host-Cache'

_HEADERS = {
    'Content-Type': 'application/json',
    'Accept': 'application/json',
    'User-Agent': 'steward-nova/0.1',
    # Keep the hosts sent in full: the shim names them by reference later.
    HOST_CACHE_HEADER: '1',
}
# Idle connections kept per process. Each thread (or greenthread) takes
# one for the length of a call, so this many calls at once reuse their
# connections; more than that open short-lived ones.
_MAX_IDLE = 8


def _target(endpoint):
    """(scheme, host, port, path prefix) of [steward] endpoint."""
    target = _TARGETS.get(endpoint)
    if target is None:
        try:
            parts = urllib.parse.urlsplit(endpoint)
            port = parts.port
        except ValueError as e:
            raise CalloutError('config', '[steward] endpoint %r is not a '
                               'URL (%s)' % (endpoint, e)) from None
        if parts.scheme not in ('http', 'https') or not parts.hostname:
            raise CalloutError(
                'config', '[steward] endpoint %r is not an http:// or '
                'https:// URL' % endpoint)
        target = (parts.scheme, parts.hostname,
                  port or (443 if parts.scheme == 'https' else 80),
                  parts.path.rstrip('/'))
        if len(_TARGETS) > 16:
            _TARGETS.clear()
        _TARGETS[endpoint] = target
    return target


_TARGETS = {}


def _dropped(conn):
    """True when an idle connection cannot be reused: the server closed
    it (readable at EOF) or it has no socket. As urllib3 checks."""
    sock = conn.sock
    if sock is None:
        return True
    try:
        # select.poll is missing under eventlet's monkey patching, and
        # select.select fails past fd 1023: poll when it is there.
        poll = getattr(select, 'poll', None)
        if poll is not None:
            p = poll()
            p.register(sock, select.POLLIN)
            return bool(p.poll(0))
        return bool(select.select([sock], [], [], 0)[0])
    except (OSError, ValueError):
        return True


class _Connections:
    """Idle kept-alive connections to steward, shared by all threads.

    A call takes one (or opens one) and gives it back only after reading
    a whole answer, so a connection never carries the leftovers of a
    failed call. After a fork the child starts empty.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._idle = []

    def get(self, target, timeout):
        """(connection, reused?) for `target`, its timeout set."""
        conn = None
        stale = []
        with self._lock:
            while self._idle:
                candidate = self._idle.pop()
                if candidate.steward_target == target:
                    conn = candidate
                    break
                stale.append(candidate)
        for c in stale:
            c.close()
        if conn is not None and _dropped(conn):
            conn.close()
            conn = None
        if conn is None:
            return self.new(target, timeout), False
        if conn.timeout != timeout:
            # [steward] timeout changed (oslo.config mutable options).
            conn.timeout = timeout
            conn.sock.settimeout(timeout)
        return conn, True

    @staticmethod
    def new(target, timeout):
        scheme, host, port, _ = target
        if scheme == 'https':
            conn = http.client.HTTPSConnection(
                host, port, timeout=timeout,
                context=ssl.create_default_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
        conn.steward_target = target
        return conn

    def put(self, conn):
        with self._lock:
            if len(self._idle) < _MAX_IDLE:
                self._idle.append(conn)
                return
        conn.close()

    def clear(self):
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _after_fork(self):
        # The lock may have been held by a thread the child does not have;
        # the sockets are the parent's to use.
        self._lock = threading.Lock()
        idle, self._idle = self._idle, []
        for conn in idle:
            try:
                conn.close()
            except Exception:
                pass


CONNECTIONS = _Connections()
os.register_at_fork(after_in_child=CONNECTIONS._after_fork)


def _exchange(conn, path, data, headers):
    """One request on `conn`: (status, body bytes, connection reusable?,
    X-Steward-Host-Cache or None)."""
    conn.request('POST', path, body=data, headers=headers)
    resp = conn.getresponse()
    raw = resp.read()
    return (resp.status, raw, not resp.will_close,
            resp.getheader(HOST_CACHE_HEADER))


def _send(target, path, data, headers, timeout):
    """POST on a kept-alive connection; (status, body bytes,
    X-Steward-Host-Cache or None).

    A reused connection that steward closed meanwhile (idle keep-alive
    timeout, restart) fails with a ConnectionError before any answer:
    the call is then made once more on a new connection. Both routes are
    pure functions of the body, so repeating one is safe. A timeout is
    never repeated.
    """
    conn, reused = CONNECTIONS.get(target, timeout)
    try:
        try:
            status, raw, keep, cache = _exchange(conn, path, data, headers)
        except ConnectionError:
            if not reused:
                raise
            conn.close()
            conn = CONNECTIONS.new(target, timeout)
            status, raw, keep, cache = _exchange(conn, path, data, headers)
    except BaseException:
        conn.close()
        raise
    if keep:
        CONNECTIONS.put(conn)
    else:
        conn.close()
    return status, raw, cache


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
    """POST the JSON bytes `data`; (the decoded 200 answer (a dict), does
    steward keep the hosts sent in full for reference?).

    `path` may carry a query (/v1/filter?weigh=true).
    """
    target = _target(CONF.steward.endpoint)
    headers = dict(_HEADERS)
    tok = token()
    if tok:
        headers['Authorization'] = 'Bearer ' + tok
    if req_id:
        headers['X-OpenStack-Request-ID'] = req_id
    timeout = CONF.steward.timeout
    try:
        status, raw, cache = _send(target, target[3] + path, data, headers,
                                   timeout)
    except TimeoutError as e:
        # socket.timeout: connecting, or waiting for any part of the answer.
        raise CalloutError('timeout', 'no answer within %ss' % timeout) from e
    except (OSError, http.client.HTTPException) as e:
        raise CalloutError(
            'connection', '%s: %s' % (type(e).__name__, e)) from e
    if status != 200:
        err = _error_of(raw)
        raise CalloutError('bad_status', 'HTTP %d %s' % (
            status, _error_summary(err, raw)),
            code=err.get('code') if err else None)
    try:
        # From bytes: json detects UTF-8 itself.
        answer = json.loads(raw)
    except ValueError as e:
        raise CalloutError('malformed', 'the 200 answer is not JSON: %r'
                           % raw[:200]) from e
    if not isinstance(answer, dict):
        raise CalloutError('malformed', 'the answer is a %s, not an object'
                           % type(answer).__name__)
    return answer, cache is not None


def _error_of(raw):
    """The `error` object of steward's error body, or None."""
    try:
        err = json.loads(raw)['error']
    except Exception:
        return None
    return err if isinstance(err, dict) else None


def _error_summary(err, raw):
    """`code: message` of steward's error body `err`, else the start of
    the body `raw`."""
    if err is None:
        return repr(raw[:200])
    text = '%s: %s' % (err.get('code'), err.get('message'))
    if err.get('field'):
        text += ' (field %s)' % err['field']
    return text


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


_HOST_NODE = operator.itemgetter('host', 'nodename')
_WEIGHT = operator.itemgetter('weight')
_FLOAT = frozenset((float,))


def _fast_keys(entries):
    """[(host, nodename)] of the entries in one C-level pass, or None when
    an entry is not an object with both keys (the slow path says which)."""
    try:
        return list(map(_HOST_NODE, entries))
    except (TypeError, KeyError, AttributeError):
        return None


def _keys(entries):
    """(host, nodename) of each entry; nodename defaults to host.

    The slow path, which names the bad entry: answers that name the sent
    hosts with their nodenames never get here.
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


def _sent_keys(entries, sent):
    """Keys of entries that must all be among `sent` (a set of (host,
    nodename) pairs of non-empty strings). Membership alone proves the
    types (a pair equal to a pair of str is one), so steward's ordinary
    answer costs one pass in C; anything else takes the slow path."""
    keys = _fast_keys(entries)
    if keys is not None:
        try:
            if sent.issuperset(keys):
                return keys
        except TypeError:  # an unhashable host or nodename
            pass
    return _keys(entries)


def check_filter_answer(answer, sent):
    """Allowed keys; `sent` is the set of (host, nodename) in the request."""
    allowed = set(_sent_keys(_entries(answer, 'allowed'), sent))
    rejected = set(_sent_keys(_entries(answer, 'rejected', required=False),
                              sent))
    named = allowed | rejected
    unknown = named - sent
    if unknown:
        raise CalloutError('malformed', 'the answer names hosts that were '
                           'not sent: %s' % sorted(unknown)[:5])
    if len(named) != len(sent):
        missing = sent - named
        raise CalloutError('malformed', 'the answer leaves %d host(s) '
                           'neither allowed nor rejected, e.g. %s'
                           % (len(missing), sorted(missing)[:5]))
    return allowed


def allowed_indexes(answer, keys):
    """Which sent hosts steward allowed: None for every one of them, else
    the indexes of the allowed ones, in request order. `keys`: the sent
    (host, nodename) pairs, in request order.

    Steward's answers take C-level passes over lists (the contract keeps
    `allowed` in request order); anything else goes through
    check_filter_answer, which names what is wrong.
    """
    allowed_entries = _entries(answer, 'allowed')
    rejected_entries = _entries(answer, 'rejected', required=False)
    fast = _fast_keys(allowed_entries)
    if fast is not None:
        if not rejected_entries and fast == keys:
            return None
        rejected = _fast_keys(rejected_entries)
        if rejected is not None and len(fast) + len(rejected) == len(keys):
            try:
                allowed = set(fast)
                indexes = [i for i, k in enumerate(keys) if k in allowed]
                # The allowed ones are sent ones, in order, each once; the
                # rejected ones are exactly the others.
                if ([keys[i] for i in indexes] == fast and set(rejected)
                        == {k for k in keys if k not in allowed}):
                    return indexes
            except TypeError:  # an unhashable host or nodename
                pass
    allowed = check_filter_answer(answer, set(keys))
    if len(allowed) == len(keys):
        return None
    return [i for i, k in enumerate(keys) if k in allowed]


def _weights_of(entries):
    """The finite weight of each entry, as floats."""
    weights = None
    try:
        weights = list(map(_WEIGHT, entries))
    except (TypeError, KeyError, AttributeError):
        pass
    # All floats and a finite sum: every weight is finite (NaN and inf
    # propagate). Ints, an overflowing sum or anything odd: one by one.
    if (weights is not None and _FLOAT.issuperset(map(type, weights))
            and math.isfinite(sum(weights))):
        return weights
    result = []
    for e in entries:
        try:
            w = e.get('weight')
        except AttributeError:
            raise _bad_entry(e, 'finite weight') from None
        t = type(w)
        if t is int:
            w = float(w)
        elif t is not float or not math.isfinite(w):
            raise _bad_entry(e, 'finite weight')
        result.append(w)
    return result


_INDEX = operator.itemgetter('index')
_INT = frozenset((int,))


def _is_index_list(value, n):
    """True when `value` is a list of distinct ints in [0, n), ascending."""
    if type(value) is not list or not _INT.issuperset(map(type, value)):
        return False
    if len(value) == n:
        return value == list(range(n))
    return (not value or (value[0] >= 0 and value[-1] < n)) and all(
        map(operator.lt, value, value[1:]))


def compact_answer(answer, n):
    """(allowed indexes or None for every host, weights or None) of a
    compact filter answer (docs/callout.md) to a request of `n` hosts.

    An answer without "allowed_indexes" (a steward that does not know
    compact=true) is None: the caller reads it as a named answer.
    """
    indexes = answer.get('allowed_indexes')
    if indexes is None:
        return None
    if not _is_index_list(indexes, n):
        raise CalloutError('malformed', '"allowed_indexes" is not an '
                           'ascending list of indexes of the %d host(s) '
                           'sent' % n)
    rejected = _entries(answer, 'rejected', required=False)
    if len(indexes) + len(rejected) != n:
        raise CalloutError('malformed', 'the answer allows %d and rejects '
                           '%d host(s), %d were sent'
                           % (len(indexes), len(rejected), n))
    if rejected:
        try:
            named = list(map(_INDEX, rejected))
        except (TypeError, KeyError, AttributeError):
            raise _bad_entry(rejected, 'index') from None
        if not _is_index_list(named, n) or set(named).intersection(indexes):
            raise CalloutError('malformed', 'the rejected hosts\' indexes '
                               'are not the %d host(s) not allowed'
                               % len(named))
    weights = answer.get('weights')
    if weights is not None:
        if type(weights) is not list or len(weights) != len(indexes):
            raise CalloutError('malformed', '"weights" is not one number '
                               'per allowed host')
        if not (_FLOAT.issuperset(map(type, weights))
                and math.isfinite(sum(weights))):
            weights = _plain_weights(weights)
    return (None if len(indexes) == n else indexes), weights


def _plain_weights(values):
    """Finite floats of a plain list of numbers (ints allowed)."""
    result = []
    for w in values:
        t = type(w)
        if t is int:
            w = float(w)
        elif t is not float or not math.isfinite(w):
            raise CalloutError('malformed', 'a weight is not a finite '
                               'number: %r' % (w,))
        result.append(w)
    return result


def check_weigh_answer(answer, sent_keys):
    """Weights in the order of `sent_keys` (a list of (host, nodename))."""
    entries = _entries(answer, 'weights')
    keys = _fast_keys(entries)
    if keys != sent_keys:
        # Not the request's order (or not plain entries): check each one.
        keys = _keys(entries)
    result = _weights_of(entries)
    if keys == sent_keys:
        # The contract keeps the request's order: nothing to match.
        return result
    weights = dict(zip(keys, result, strict=True))
    if len(keys) != len(sent_keys) or weights.keys() != set(sent_keys):
        raise CalloutError('malformed', 'the answer weighs %d host(s), '
                           '%d were sent' % (len(weights), len(sent_keys)))
    return [weights[k] for k in sent_keys]


# The host references each steward (by target) said it keeps: those hosts
# go by reference while unchanged (docs/callout.md, "Host references").
_KNOWN = {}
# Bound per steward: past it, send everything in full once more.
_MAX_KNOWN = 200000
UNKNOWN_REFS = 'steward.unknown_host_refs'


# The (host, nodename) and the reference of an encode_hosts item.
_KEY = operator.itemgetter(0)
_REF = operator.itemgetter(2)


def known_refs(target):
    """The set of references steward at `target` keeps (as sent: quoted)."""
    known = _KNOWN.get(target)
    if known is None:
        if len(_KNOWN) > 16:
            _KNOWN.clear()
        known = _KNOWN[target] = set()
    return known


def request_body(spec_obj, encoded, known, instance_extra=None,
                 operation_name=None):
    """The body: each host by reference when `known` holds it, else in
    full. `encoded` as body.encode_hosts gives it; `instance_extra` adds
    to the body's instance object; `operation_name` names an unshelve."""
    return body_mod.encode(
        spec_obj, [ref if ref in known else frag for _, frag, ref in encoded],
        instance_extra, operation_name)


def remember(known, encoded, cached):
    """After a 200: steward keeps every host of the request when it said
    so (`cached`), else none (an older steward, or its cache turned off)."""
    if not cached:
        known.clear()
        return
    if len(known) > _MAX_KNOWN:
        known.clear()
    known.update(map(_REF, encoded))


def call(path, host_states, spec_obj, instance_extra=None):
    """Encode the body, POST it. Returns (answer, sent keys in order).

    Hosts steward keeps go by reference; when it no longer holds one (a
    restart, its cache full, another replica) it answers 409 and every
    host is sent in full once more. `instance_extra` adds to the body's
    instance object (the siblings of a multi-create); a move carries its
    source host's AZ (body.source_az).
    """
    try:
        default_az = body_mod.configured_default_az()
        encoded = body_mod.encode_hosts(
            host_states, CONF.steward.send_instance_uuids, default_az)
        extra = dict(instance_extra or {})
        extra['current_az'] = body_mod.source_az(spec_obj, host_states,
                                                 default_az)
        # An unshelve looks like a boot; its instance has an AZ of its own.
        operation_name = None
        shelved = (body_mod.unshelved(spec_obj, default_az)
                   if extra['current_az'] is None else None)
        if shelved is not None:
            extra['current_az'] = shelved[1]
            operation_name = 'unshelve'
        instance_extra = extra
        known = known_refs(_target(CONF.steward.endpoint))
        data = request_body(spec_obj, encoded, known, instance_extra,
                            operation_name)
    except body_mod.BodyError as e:
        raise CalloutError('shim_error', str(e)) from e
    except (TypeError, ValueError) as e:
        raise CalloutError(
            'shim_error', 'the request body is not valid JSON: %s' % e
        ) from e
    req_id = request_id(spec_obj)
    try:
        answer, cached = post(path, data, req_id)
    except CalloutError as e:
        if e.code != UNKNOWN_REFS:
            raise
        known.clear()
        answer, cached = post(path, request_body(
            spec_obj, encoded, known, instance_extra, operation_name),
            req_id)
    remember(known, encoded, cached)
    return answer, list(map(_KEY, encoded))


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
