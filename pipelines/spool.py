"""A read-only sequence that keeps at most a bounded number of items in memory and spills the rest to an
anonymous temporary file: what a sync plan holds of the documents to process (``pipelines.sync``), so a
full ingest of N files does not hold N ``SourceItem``s (about 1.2 KB each) for the whole run.

``ItemSpool.build(items)`` (or ``append`` then use) keeps the first ``in_memory`` items as they are and
pickles the others in batches of ``batch`` to a ``tempfile.TemporaryFile`` (deleted when the spool is
closed or collected; never a named file). Iterating reads the spilled batches back one at a time, each
iterator with its own position (several may run at once, from any thread). ``len``, truth, indexing (in
memory: O(1); spilled: a scan), ``==`` against any sequence and ``+`` (a chained view, nothing copied) work
as on the tuples the plan held before. Pickling (a Prefect task result sent between processes) writes
the items themselves.
"""

from __future__ import annotations

import itertools
import pickle
import tempfile
import threading
from typing import Any, Iterable, Iterator, Sequence, TypeVar, overload

T = TypeVar("T")

IN_MEMORY = 1000  # items kept in memory before the spool spills to its temporary file
BATCH = 256  # items per pickled batch in the file


class _View(Sequence[T]):
    """What a spool and a chain of them share: read-only sequence behaviour over ``__iter__`` and ``__len__``."""

    @overload
    def __getitem__(self, index: int) -> T: ...

    @overload
    def __getitem__(self, index: slice) -> list[T]: ...

    def __getitem__(self, index: int | slice) -> T | list[T]:
        if isinstance(index, slice):
            return list(self)[index]
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("spool index out of range")
        return next(itertools.islice(iter(self), index, None))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or isinstance(other, (str, bytes)):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __add__(self, other: Sequence[T]) -> "Chain[T]":
        return Chain(self, other)

    def __radd__(self, other: Sequence[T]) -> "Chain[T]":
        return Chain(other, self)

    def __reduce__(self) -> tuple[Any, ...]:
        return ItemSpool.build, (list(self),)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self)} items)"


class ItemSpool(_View[T]):
    """See the module docstring."""

    def __init__(self, *, in_memory: int = IN_MEMORY, batch: int = BATCH) -> None:
        if in_memory < 0 or batch < 1:
            raise ValueError("in_memory must be >= 0 and batch >= 1")
        self._in_memory, self._batch = in_memory, batch
        self._head: list[T] = []
        self._pending: list[T] = []
        self._file: Any = None
        self._end = 0  # bytes written to the file
        self._len = 0
        self._lock = threading.Lock()

    @classmethod
    def build(cls, items: Iterable[T] = (), **kwargs: int) -> "ItemSpool[T]":
        spool: ItemSpool[T] = cls(**kwargs)
        for item in items:
            spool.append(item)
        return spool

    def append(self, item: T) -> None:
        self._len += 1
        if len(self._head) < self._in_memory:
            self._head.append(item)
            return
        self._pending.append(item)
        if len(self._pending) >= self._batch:
            self._spill()

    @property
    def spilled(self) -> int:
        """How many items are in the temporary file (not in memory)."""
        return self._len - len(self._head) - len(self._pending)

    def _spill(self) -> None:
        with self._lock:
            if self._file is None:
                self._file = tempfile.TemporaryFile(prefix="ondata-plan-")
            self._file.seek(self._end)
            pickle.dump(self._pending, self._file, protocol=pickle.HIGHEST_PROTOCOL)
            self._end = self._file.tell()
        self._pending = []

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, int) and 0 <= index < len(self._head):
            return self._head[index]
        return super().__getitem__(index)

    def __bool__(self) -> bool:
        return self._len > 0

    def __iter__(self) -> Iterator[T]:
        yield from self._head
        pos, end = 0, self._end
        while pos < end:
            with self._lock:
                self._file.seek(pos)
                batch = pickle.load(self._file)
                pos = self._file.tell()
            yield from batch
        yield from self._pending

    def close(self) -> None:
        """Delete the temporary file (the spool is empty afterwards)."""
        with self._lock:
            if self._file is not None:
                self._file.close()
            self._file, self._end, self._head, self._pending, self._len = None, 0, [], [], 0


class Chain(_View[T]):
    """Sequences read one after the other (``spool + other``), nothing copied."""

    def __init__(self, *parts: Sequence[T]) -> None:
        self._parts = parts

    def __len__(self) -> int:
        return sum(len(p) for p in self._parts)

    def __iter__(self) -> Iterator[T]:
        return itertools.chain.from_iterable(self._parts)

    def __add__(self, other: Sequence[T]) -> "Chain[T]":
        return Chain(*self._parts, other)


__all__ = ["BATCH", "Chain", "IN_MEMORY", "ItemSpool"]
