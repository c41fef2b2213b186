"""A threaded HTTP server on a free loopback port, for the small stubs the
tests stand up (a faulty steward, Neutron's empty lists, a Prometheus scrape
target). Subclasses define their handler and pass it in; start/stop and the
context manager are shared."""

import http.server
import threading


class LoopbackServer:
    def __init__(self, handler_cls, poll_interval=0.1):
        self._httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0),
                                                      handler_cls)
        self._httpd.daemon_threads = True
        self.address = '127.0.0.1:%d' % self._httpd.server_address[1]
        self.url = 'http://' + self.address
        # stop() waits for one poll interval: keep it short in fast tests.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={'poll_interval': poll_interval}, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self):
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
