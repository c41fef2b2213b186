"""Stories d and e: steward down or answering badly never blocks a boot.

Every request still schedules through Nova's real handlers: all hosts pass
the filter, the weigher gives equal weights, and the operator gets one
warning per kind of failure per [steward] warn_interval, not one per host.
"""

import os
import signal
import threading
import time
import urllib.parse

from nova.scheduler import weights as nova_weights
import pytest

from conftest import ROUND_TRIP
from conftest import STEWARD_FILTER
from conftest import STEWARD_WEIGHER
from conftest import names
from conftest import warnings_of
from harness import nova_scheduler as ns
from steward_nova.filters import StewardFilter
from steward_nova.weighers import StewardWeigher


def identical_hosts(prefix, n=6):
    """Hosts Nova's own weighers cannot tell apart, so any difference in
    the final weights would come from steward."""
    agg = ns.az_aggregate('az1')
    return [ns.make_host_state('%s-%d' % (prefix, i), aggregates=[agg])
            for i in range(n)]


def steward_weights(hosts, spec):
    """The StewardWeigher's raw list, as the handler receives it."""
    return StewardWeigher().weigh_objects(
        [nova_weights.WeighedHost(h, 0.0) for h in hosts], spec)


def test_steward_stopped_schedules_and_warns_once_per_interval(
        nova_conf, private_steward, shim_log):
    hosts = identical_hosts('down')
    sched = nova_conf.scheduler(private_steward.url,
                                private_steward.token_file(),
                                warn_interval=60.0)
    # Steward up: the same request is answered by steward, no warning.
    assert len(sched.schedule(hosts, ns.make_request_spec())) == 6
    assert warnings_of(shim_log) == []

    private_steward.stop()
    for _ in range(3):
        weighed = sched.schedule(hosts, ns.make_request_spec())
        assert sorted(names(weighed)) == sorted(names(hosts))
        assert len({w.weight for w in weighed}) == 1, weighed
        assert steward_weights(hosts, ns.make_request_spec()) == [0.0] * 6

    # 4 requests x (filter + 2 weighs) x 6 hosts failed: one warning.
    warned = warnings_of(shim_log)
    assert len(warned) == 1, [r.getMessage() for r in warned]
    text = warned[0].getMessage()
    assert 'connection' in text and private_steward.url in text
    assert 'passed all 6 host(s)' in text
    assert '[steward] endpoint' in text

    # Once the interval is over, the next failure warns again and says
    # how many were swallowed meanwhile.
    with ns.nova_flags(steward={'warn_interval': 0.2}):
        time.sleep(0.25)
        sched.schedule(hosts, ns.make_request_spec())
    warned = warnings_of(shim_log)
    assert len(warned) == 2
    assert 'more failure(s) of this kind' in warned[1].getMessage()


def _unread_request_bytes(port):
    """Bytes that reached steward's side of a connection to `port` and
    that steward has not read: the kernel's receive queue of each
    established socket whose local port is `port` (/proc/net/tcp)."""
    waiting = 0
    with open('/proc/net/tcp', encoding='ascii') as f:
        next(f)
        for line in f:
            fields = line.split()
            local, state, queues = fields[1], fields[3], fields[4]
            if state == '01' and int(local.split(':')[1], 16) == port:
                waiting += int(queues.split(':')[1], 16)
    return waiting


def test_steward_killed_mid_request_schedules_and_warns_once(
        nova_conf, private_steward, shim_log):
    """Issue 7, faults: steward KILLED (SIGKILL) while the Nova shim has a
    request in flight. The real steward process is frozen (SIGSTOP) so
    the shim's request for 120 hosts is provably sent and unanswered, then
    killed: Nova's real handlers still schedule every host (the filter
    passes all, the weigher gives equal weights), the call ends at the
    kill, not at [steward] timeout, and the operator gets one warning."""
    hosts = identical_hosts('killed', n=120)
    spec = ns.make_request_spec()
    sched = nova_conf.scheduler(private_steward.url,
                                private_steward.token_file(),
                                timeout=30.0, warn_interval=60.0)
    port = urllib.parse.urlsplit(private_steward.url).port
    pid = private_steward.process.proc.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        outcome = {}

        def schedule():
            try:
                outcome['weighed'] = sched.schedule(hosts, spec)
            except BaseException as e:  # reported below, not lost
                outcome['error'] = e

        worker = threading.Thread(target=schedule, daemon=True)
        started = time.monotonic()
        worker.start()
        deadline = started + 10
        while _unread_request_bytes(port) == 0:
            assert worker.is_alive(), outcome
            assert time.monotonic() < deadline, (
                'the shim\'s request never reached steward\'s socket')
            time.sleep(0.01)
        assert worker.is_alive(), 'answered while steward was frozen?'
    finally:
        os.kill(pid, signal.SIGKILL)
    worker.join(20)
    elapsed = time.monotonic() - started
    assert not worker.is_alive(), 'the shim still waits after the kill'
    assert 'error' not in outcome, 'the shim raised into Nova: %r' % (
        outcome['error'],)
    assert private_steward.process.proc.wait(5) == -signal.SIGKILL

    weighed = outcome['weighed']
    assert sorted(names(weighed)) == sorted(names(hosts))
    assert len({w.weight for w in weighed}) == 1, weighed
    assert elapsed < 15, 'ended by the timeout (30 s), not by the kill'
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1, warned
    assert '(connection:' in warned[0], warned[0]
    assert 'passed all 120 host(s)' in warned[0], warned[0]


BAD_ANSWERS = [
    ('garbage', 'malformed'),
    ('empty', 'malformed'),
    ('status500', 'bad_status'),
    ('status401', 'bad_status'),
    ('not_object', 'malformed'),
    ('wrong_types', 'malformed'),
    ('missing_hosts', 'malformed'),
    ('unknown_host', 'malformed'),
    ('nan_weight', 'malformed'),
    ('sleep', 'timeout'),
    ('compact_descending', 'malformed'),
    ('compact_out_of_range', 'malformed'),
    ('compact_missing', 'malformed'),
    ('compact_overlap', 'malformed'),
    ('compact_short_weights', 'malformed'),
    ('compact_bad_weight', 'malformed'),
]


@pytest.mark.parametrize('mode,kind', BAD_ANSWERS,
                         ids=[m for m, _ in BAD_ANSWERS])
def test_bad_answer_fails_open(nova_conf, fault_server, shim_log, mode,
                               kind):
    srv = fault_server(mode, sleep=1.0)
    hosts = identical_hosts('bad-' + mode, n=4)
    sched = nova_conf.scheduler(srv.url, timeout=0.2)
    spec = ns.make_request_spec()

    started = time.monotonic()
    weighed = sched.schedule(hosts, spec)
    elapsed = time.monotonic() - started

    assert sorted(names(weighed)) == sorted(names(hosts))
    assert len({w.weight for w in weighed}) == 1
    assert steward_weights(hosts, spec) == [0.0] * 4
    # The shim really asked (filter and weigher) and was answered badly:
    # a failed filter call leaves no weights, so the weigher asked too.
    assert [r['path'] for r in srv.requests[:2]] == [
        ROUND_TRIP, '/v1/weigh']
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1, warned
    assert '(%s:' % kind in warned[0]
    # A timeout costs the timeout, not the sleeping server's whole delay.
    if mode == 'sleep':
        assert elapsed < 1.0


def test_fail_closed_passes_no_host_but_weighs_equal(nova_conf,
                                                     fault_server, shim_log):
    srv = fault_server('garbage')
    hosts = identical_hosts('closed', n=3)
    nova_conf.scheduler(srv.url, fail_open=False,
                        filters=['ComputeFilter', 'StewardFilter'],
                        weighers=[STEWARD_WEIGHER])
    spec = ns.make_request_spec()
    assert list(StewardFilter().filter_all(hosts, spec)) == []
    assert steward_weights(hosts, spec) == [0.0] * 3
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert 'passed no host ([steward] fail_open = False)' in warned[0]


def test_shim_bug_fails_open(nova_conf, fault_server, shim_log):
    """A RequestSpec the body builder cannot use (no instance uuid) must
    not raise into Nova: that is a shim error, and fails open."""
    srv = fault_server('ok')
    hosts = identical_hosts('shimbug', n=3)
    sched = nova_conf.scheduler(srv.url)
    spec = ns.make_request_spec()
    spec.obj_reset_changes()
    del spec.instance_uuid
    assert sorted(names(sched.filter(hosts, spec))) == sorted(names(hosts))
    assert srv.requests == []
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1 and '(shim_error:' in warned[0]
    assert 'instance_uuid' in warned[0]


def test_unreadable_token_file_fails_open_and_says_so(nova_conf,
                                                      fault_server, shim_log,
                                                      tmp_path):
    srv = fault_server('ok')
    hosts = identical_hosts('notoken', n=2)
    sched = nova_conf.scheduler(srv.url,
                                token_file=str(tmp_path / 'missing'))
    assert len(sched.filter(hosts, ns.make_request_spec())) == 2
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1 and 'token_file' in warned[0]
    assert str(tmp_path / 'missing') in warned[0]


def test_filter_class_is_registered_as_nova_resolves_it(nova_conf):
    sched = nova_conf.scheduler('http://127.0.0.1:9')
    assert [type(f).__name__ for f in sched.filters][-1] == 'StewardFilter'
    assert type(sched.weighers[-1]).__name__ == 'StewardWeigher'
    assert STEWARD_FILTER.endswith(type(sched.filters[-1]).__name__)


@pytest.mark.parametrize('fail_open', [False, True])
def test_failing_warning_keeps_the_operators_choice(nova_conf, fault_server,
                                                    shim_log, monkeypatch,
                                                    fail_open):
    """The warning itself raising (a broken log handler, a bad format)
    must not turn fail-closed into fail-open, nor the other way round."""
    srv = fault_server('garbage')
    hosts = identical_hosts('warnraises-%s' % fail_open, n=3)
    nova_conf.scheduler(srv.url, fail_open=fail_open,
                        filters=['ComputeFilter', 'StewardFilter'],
                        weighers=[STEWARD_WEIGHER])

    def broken_warning(*args, **kwargs):
        raise RuntimeError('log handler is broken')

    monkeypatch.setattr('steward_nova.client.warn_failure', broken_warning)
    kept = list(StewardFilter().filter_all(hosts, ns.make_request_spec()))
    # Steward really was asked (and answered garbage): the failure path ran.
    assert srv.requests, 'the filter never called steward'
    assert sorted(names(kept)) == (sorted(names(hosts)) if fail_open
                                   else [])
