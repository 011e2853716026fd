"""The yardstick: gevent's ten-line echo server, with nothing of the course's around it.

``bench/socket_server.py`` loads it next to the course's gevent server with the same generator,
in the same run; the notebook prints `bare_echo` as the first server a reader sees.
"""

from __future__ import annotations

import os

from ...course import LOOPBACK, check_int, check_loopback_host
from .handle import check_control
from .servers import BACKLOG

__all__ = ["bare_echo", "serve_bare"]

# After the stop request, handlers still running get this long before they are killed.
_GRACE_SECONDS = 1.0


def bare_echo(sock, address) -> None:
    """Echo everything back until the client closes: the whole handler of a gevent echo server."""
    while True:
        data = sock.recv(65536)  # whatever has arrived, up to 64 KiB
        if not data:
            break
        sock.sendall(data)
    sock.close()


def serve_bare(control, host: str = LOOPBACK, port: int = 0) -> dict:
    """A bare ``StreamServer((host, port), bare_echo)``, started and stopped from the kernel."""
    control = check_control(control)
    host = check_loopback_host("host", host)
    port = check_int("port", port, 0, 65535)
    from gevent.server import StreamServer
    from gevent.socket import wait_read

    server = StreamServer((host, port), bare_echo, backlog=BACKLOG)
    try:  # whatever goes wrong once it listens (a bad control, an interrupt), the socket closes
        server.start()
        control.ready(host=host, port=server.address[1], pids=[os.getpid()])
        try:
            wait_read(control.stop_fd, timeout=control.remaining())
        except OSError:  # the lifetime ended
            pass
    finally:
        server.stop(timeout=_GRACE_SECONDS)
    return {"workers": []}
