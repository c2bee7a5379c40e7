"""Local listeners for "never answered" tests, standard library only.

- ``closed_port()``: a port nobody listens on (connection refused).
- ``silent()``: a listener the kernel completes connections for and nobody ever answers (the
  connection is made; every read times out).
- ``unconnectable()``: a listener whose accept queue is full, so the kernel drops every further
  SYN: a connect times out, as for a host behind a firewall that drops packets.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def silent() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@contextlib.contextmanager
def unconnectable() -> Iterator[int]:
    with contextlib.ExitStack() as stack:
        listener = stack.enter_context(socket.socket())
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)  # never accepted: a queue of one, then SYNs are dropped
        port = listener.getsockname()[1]
        for _ in range(3):
            filler = stack.enter_context(socket.socket())
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
        time.sleep(0.2)
        with socket.socket() as probe:  # the queue is full: a connect now times out
            probe.settimeout(0.3)
            try:
                probe.connect(("127.0.0.1", port))
            except TimeoutError:
                pass
            else:
                raise AssertionError("the listener still accepts connections")
        yield port
