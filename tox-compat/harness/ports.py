"""Free loopback ports for peers started by the harness."""

import socket


def free_port(host='127.0.0.1'):
    """A port nobody listens on right now.

    The kernel picks it; there is a small window before the peer binds it,
    which is why start_* retries on "address in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]
