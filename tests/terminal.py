"""Reading a child process's pseudo-terminal in tests (``ondata chat``, ``--cleanup full`` confirmation)."""

from __future__ import annotations

import os
import select
import time


def read_until(fd: int, marker: bytes, timeout: float = 60.0) -> bytes:
    """What the terminal ``fd`` shows until ``marker`` appears (or the child closes it); fails after ``timeout`` s."""
    buf = b""
    deadline = time.monotonic() + timeout
    while marker not in buf:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"no {marker!r} within {timeout} s; got {buf[-500:]!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            buf += chunk
    return buf
