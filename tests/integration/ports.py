"""Free loopback ports for the servers a test or a benchmark starts.

Shared by the integration tests (conftest.py) and bench/bench.py.
"""

import socket

_ports_given = set()


def free_port():
    """A port nothing listens on now and that this process has not handed out
    before: the kernel may give the same ephemeral port to two binds in a row
    once the first socket is closed (it did, for a proxy and its admin port)."""
    while True:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        if port not in _ports_given:
            _ports_given.add(port)
            return port
