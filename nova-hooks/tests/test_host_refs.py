"""Host references (docs/callout.md) through Nova's real handlers against a
live steward: unchanged hosts go by reference, with the very answer a
full body gets; a steward that lost them (restarted) is sent them in full
once more, within the same scheduling request and without a warning; a
steward that keeps none is never sent a reference."""

import hashlib
import json

import pytest

from conftest import ROUND_TRIP
from conftest import names
from conftest import warnings_of
from harness import nova_scheduler as ns
from harness import start_steward
from steward_nova import body
from steward_nova import client


@pytest.fixture
def sent(monkeypatch):
    """(path, decoded body) of every request the shim sends (client._send)
    and the X-Steward-Host-Cache of its answer."""
    made = []
    real = client._send

    def spy(target, path, data, headers, timeout):
        status, raw, cache = real(target, path, data, headers, timeout)
        made.append((path, json.loads(data), status, cache))
        return status, raw, cache

    monkeypatch.setattr(client, '_send', spy)
    return made


def cluster(prefix, steward, n=6):
    agg = ns.az_aggregate('az1')
    hosts = [ns.make_host_state('%s-%d' % (prefix, i), aggregates=[agg],
                                vcpus=32, free_ram_mb=40000 + 5000 * i,
                                instances=[ns.stable_uuid(prefix, i)])
             for i in range(n)]
    steward.push_telemetry(hosts=[
        {'host': h.host, 'az': 'az1', 'steal': 0.03 * i, 'load5': 2.0}
        for i, h in enumerate(hosts)])
    return hosts


def web_spec():
    return ns.make_request_spec(hints={'steward_role': ['web'],
                                       'steward_profile': ['web']})


def full_entries(req):
    return [h for h in req['hosts'] if isinstance(h, dict)]


def sha_ref(host_state):
    """The reference of a host's entry as the shim encodes it, computed
    here from the JSON text."""
    _, fragment, _ = body.encode_host(host_state)
    return hashlib.sha256(fragment).hexdigest()[:32]


def weights(result):
    return [(w.obj.host, w.weight) for w in result]


def test_unchanged_hosts_go_by_reference_with_the_same_answer(
        nova_conf, steward, sent):
    hosts = cluster('ref', steward)
    sched = nova_conf.scheduler(steward.url, steward.token_file())
    spec = web_spec()
    first = sched.schedule(hosts, spec)
    (path, req, status, cache), = sent
    assert path == ROUND_TRIP and status == 200
    assert cache == '20000', 'steward says it keeps hosts'
    assert len(full_entries(req)) == 6, 'first sight: every host in full'

    # As FilterScheduler does with the host it picks: it changes.
    picked = first[0].obj
    picked.consume_from_request(spec)
    del sent[:]
    second = sched.schedule(hosts, web_spec())
    (_, req, status, _), = sent
    assert status == 200
    assert [h['host'] for h in full_entries(req)] == [picked.host]
    assert [h for h in req['hosts'] if not isinstance(h, dict)] == [
        sha_ref(h) for h in hosts if h is not picked]

    # The same request with every host in full gets the same answer.
    client._KNOWN.clear()
    del sent[:]
    third = sched.schedule(hosts, web_spec())
    (_, req, _, _), = sent
    assert len(full_entries(req)) == 6
    assert names(second) == names(third)
    assert [w for _, w in weights(second)] == pytest.approx(
        [w for _, w in weights(third)])


def test_a_restarted_steward_is_sent_every_host_again_at_once(
        nova_conf, private_steward, sent, shim_log):
    hosts = cluster('rst', private_steward)
    sched = nova_conf.scheduler(private_steward.url,
                                private_steward.token_file())
    assert len(sched.schedule(hosts, web_spec())) == 6
    # Same port, same config, empty cache.
    private_steward.process.stop()
    private_steward.process.start().wait_http(
        private_steward.url + '/healthz')
    cluster('rst', private_steward)
    del sent[:]
    result = sched.schedule(hosts, web_spec())
    assert len(result) == 6
    assert [(s, len(full_entries(r))) for _, r, s, _ in sent] == [
        (409, 0), (200, 6)], 'references, refused; then every host in full'
    assert warnings_of(shim_log) == [], 'a 409 for references is no failure'
    # Known again: the next request sends references.
    del sent[:]
    sched.schedule(hosts, web_spec())
    assert [len(full_entries(r)) for _, r, _, _ in sent] == [0]


def test_a_steward_that_keeps_no_hosts_is_never_sent_references(
        nova_conf, tmp_path, sent):
    st = start_steward(tmp_path / 'steward',
                       server={'host_cache_entries': 0})
    try:
        hosts = cluster('nocache', st, n=3)
        sched = nova_conf.scheduler(st.url, st.token_file())
        for _ in range(2):
            assert len(sched.schedule(hosts, web_spec())) == 3
        assert [(s, c, len(full_entries(r))) for _, r, s, c in sent] == [
            (200, None, 3), (200, None, 3)]
    finally:
        st.stop()
