"""Refreshes of the local index's derived structures off the search path (``vectors.faiss``, ``keyword.bin``).

A reader that holds a derived structure never rebuilds it, or catches it up far, on its search
path: it keeps answering from what it holds while one background thread prepares the new one, on
a read-only SQLite connection of its own inside one read snapshot, and then swaps the reference
(``indexers.local_vectors.VectorIndex.current``, ``indexers.local_index.LocalIndex._current_keyword``).
This module is the one owner of that thread: at most one refresh runs per structure, the swap
runs under its lock, and a failure is logged (the old structure keeps serving; the next search
that finds it behind starts another).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Callable, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class BackgroundRefresh(Generic[T]):
    """One derived structure's background refresh: ``start(prepare, swap)`` runs ``prepare(con)`` on a
    daemon thread (``connect()``'s connection, one read snapshot), then ``swap(result)`` under the lock."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, name: str, what: str) -> None:
        self._connect = connect
        self._name = name  # the thread's name
        self._what = what  # the structure, for the log ("the keyword index of /path")
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """Whether a refresh is under way (started and not yet swapped in or failed)."""
        return self._thread is not None

    def start(self, prepare: Callable[[sqlite3.Connection], T], swap: Callable[[T], None]) -> bool:
        """Start a refresh unless one is running; True when this call started it."""
        with self._lock:
            if self._thread is not None:
                return False
            thread = threading.Thread(target=self._run, args=(prepare, swap), name=self._name, daemon=True)
            self._thread = thread
        thread.start()
        return True

    def _run(self, prepare: Callable[[sqlite3.Connection], T], swap: Callable[[T], None]) -> None:
        try:
            con = self._connect()
            try:
                con.execute("BEGIN")  # one read snapshot for all that ``prepare`` reads
                try:
                    new = prepare(con)
                finally:
                    con.execute("COMMIT")
            finally:
                con.close()
            with self._lock:
                swap(new)
        except Exception as exc:  # the old structure keeps serving; the next search tries again
            log.warning("refreshing %s in the background failed: %s", self._what, exc)
        finally:
            with self._lock:
                self._thread = None

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a refresh under way to finish (tests, ``close()``)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
