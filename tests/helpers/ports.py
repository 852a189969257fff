"""A free TCP port for the tests that start torchrun (a fixed one may be taken by a concurrent run)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port nobody listens on now (other test processes may use fixed ones)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
