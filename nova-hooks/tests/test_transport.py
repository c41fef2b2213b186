"""The shim's HTTP transport (kept-alive http.client connections): reuse,
reconnection after steward drops a kept-alive connection, the timeout,
and failing open exactly as before when a connection cannot be had."""

import contextlib
import json
import socket
import threading
import time

import pytest

from conftest import STEWARD_WEIGHER
from conftest import warnings_of
from harness import nova_scheduler as ns
from steward_nova import client


@pytest.fixture(autouse=True)
def no_idle_connections():
    client.CONNECTIONS.clear()
    yield
    client.CONNECTIONS.clear()


class ScriptedServer:
    """HTTP/1.1 on raw sockets. `plan(conn_no, req_no)` says what the
    req_no-th request (from 0) of the conn_no-th connection gets:
    'answer' (and keep the connection), 'answer_close' (answer, then
    close without saying so, as an idle keep-alive timeout does),
    'drop' (read the request, close without answering), or a number of
    seconds to sleep before answering."""

    def __init__(self, plan):
        self.plan = plan
        self.connections = 0
        self.requests = []  # (conn_no, req_no, path, headers)
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(('127.0.0.1', 0))
        self._sock.listen(16)
        self.url = 'http://127.0.0.1:%d' % self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            conn_no = self.connections
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn, conn_no),
                             daemon=True).start()

    def _serve(self, conn, conn_no):
        f = conn.makefile('rb')
        with contextlib.closing(conn), contextlib.closing(f):
            req_no = 0
            while True:
                line = f.readline()
                if not line:
                    return
                path = line.split()[1].decode()
                headers = {}
                while True:
                    h = f.readline()
                    if h in (b'\r\n', b'\n', b''):
                        break
                    k, _, v = h.decode().partition(':')
                    headers[k.strip().lower()] = v.strip()
                body = json.loads(f.read(int(headers['content-length'])))
                self.requests.append((conn_no, req_no, path, headers))
                action = self.plan(conn_no, req_no)
                req_no += 1
                if action == 'drop':
                    return
                if isinstance(action, (int, float)):
                    time.sleep(action)
                answer = json.dumps({'weights': [
                    {'host': h['host'], 'nodename': h['nodename'],
                     'weight': float(i)}
                    for i, h in enumerate(body['hosts'])]}).encode()
                try:
                    conn.sendall(b'HTTP/1.1 200 OK\r\n'
                                 b'Content-Type: application/json\r\n'
                                 b'Content-Length: %d\r\n\r\n%s'
                                 % (len(answer), answer))
                except OSError:
                    return
                if action == 'answer_close':
                    return

    def stop(self):
        self._stop = True
        self._sock.close()


@pytest.fixture
def scripted():
    servers = []

    def make(plan):
        srv = ScriptedServer(plan)
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


def weigh(nova_conf, url, n=3, **opts):
    """One scheduling request's weighing through Nova's weight handler:
    one /v1/weigh call. Steward's weights rank the last host first."""
    sched = nova_conf.scheduler(url, filters=[], weighers=[STEWARD_WEIGHER],
                                **opts)
    hosts = [ns.make_host_state('tr-%d' % i) for i in range(n)]
    return [w.obj.host for w in sched.weigh(hosts, ns.make_request_spec())]


STEWARD_ORDER = ['tr-2', 'tr-1', 'tr-0']


def test_calls_reuse_one_kept_alive_connection(nova_conf, scripted,
                                               shim_log):
    srv = scripted(lambda conn_no, req_no: 'answer')
    for _ in range(5):
        assert weigh(nova_conf, srv.url) == STEWARD_ORDER
    assert srv.connections == 1 and len(srv.requests) == 5
    headers = srv.requests[0][3]
    assert headers['content-type'] == 'application/json'
    assert headers['accept'] == 'application/json'
    assert headers['x-openstack-request-id'].startswith('req-')
    assert warnings_of(shim_log) == []


def test_connection_closed_while_idle_is_replaced(nova_conf, scripted,
                                                  shim_log):
    """Steward closed the kept-alive connection between two requests (its
    idle timeout, a restart): the next call opens a new one, no failure."""
    srv = scripted(lambda conn_no, req_no: 'answer_close')
    for _ in range(3):
        assert weigh(nova_conf, srv.url) == STEWARD_ORDER
        time.sleep(0.05)  # the close reaches the client
    assert srv.connections == 3 and len(srv.requests) == 3
    assert warnings_of(shim_log) == []


def test_connection_dropped_as_the_request_arrives_is_retried_once(
        nova_conf, scripted, shim_log):
    """The race the idle check cannot see: steward drops the reused
    connection after the request was sent. The call is made again on a
    new connection (both routes are pure functions of the body)."""
    srv = scripted(lambda conn_no, req_no: 'drop' if req_no == 1
                   else 'answer')
    assert weigh(nova_conf, srv.url) == STEWARD_ORDER
    assert weigh(nova_conf, srv.url) == STEWARD_ORDER
    assert [(c, r) for c, r, _, _ in srv.requests] == [(0, 0), (0, 1),
                                                       (1, 0)]
    assert warnings_of(shim_log) == []


def test_new_connection_dropped_fails_open_without_retry(nova_conf,
                                                         scripted,
                                                         shim_log):
    srv = scripted(lambda conn_no, req_no: 'drop')
    order = weigh(nova_conf, srv.url)
    assert sorted(order) == sorted(STEWARD_ORDER)
    assert len(srv.requests) == 1
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1 and '(connection:' in warned[0], warned
    assert 'equal weights' in warned[0]


def test_timeout_holds_on_a_reused_connection(nova_conf, scripted,
                                              shim_log):
    """[steward] timeout applies to a connection made under another
    value, and a timeout is never retried."""
    srv = scripted(lambda conn_no, req_no: 1.5 if req_no == 1 else 'answer')
    assert weigh(nova_conf, srv.url, timeout=5.0) == STEWARD_ORDER
    started = time.monotonic()
    order = weigh(nova_conf, srv.url, timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert sorted(order) == sorted(STEWARD_ORDER)
    assert len(srv.requests) == 2 and srv.connections == 1
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1 and '(timeout:' in warned[0], warned


def test_nothing_listening_fails_open_as_connection(nova_conf, shim_log):
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    order = weigh(nova_conf, 'http://127.0.0.1:%d' % port)
    assert sorted(order) == sorted(STEWARD_ORDER)
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1 and '(connection:' in warned[0], warned


def test_https_endpoint_to_a_plain_http_server_fails_open(nova_conf,
                                                          fault_server,
                                                          shim_log):
    srv = fault_server('ok')
    order = weigh(nova_conf, srv.url.replace('http://', 'https://'))
    assert sorted(order) == sorted(STEWARD_ORDER)
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1 and '(connection:' in warned[0], warned


def test_endpoint_that_is_no_url_fails_open_and_says_so(nova_conf,
                                                        shim_log):
    order = weigh(nova_conf, 'steward.example:8790')
    assert sorted(order) == sorted(STEWARD_ORDER)
    warned = [r.getMessage() for r in warnings_of(shim_log)]
    assert len(warned) == 1 and '(config:' in warned[0], warned
    assert 'http:// or https://' in warned[0]


def test_endpoint_path_prefix_is_kept(nova_conf, fault_server):
    srv = fault_server('ok')
    weigh(nova_conf, srv.url + '/steward/')
    assert [r['path'] for r in srv.requests] == ['/steward/v1/weigh']
