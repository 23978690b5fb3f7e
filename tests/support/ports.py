"""One way for tests to find a free TCP port."""

from __future__ import annotations

import socket


def free_port(ports: range | None = None, host: str = "127.0.0.1") -> int:
    """A port nothing listens on now: the first free one in `ports`, or one the OS picks.

    A fixed range keeps tests that run side by side (and helpers on a shared machine) apart;
    an OS-picked port is enough where nothing else races for it.
    """
    if ports is None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            return s.getsockname()[1]
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")
