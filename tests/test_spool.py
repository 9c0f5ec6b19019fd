"""pipelines.spool.ItemSpool: a plan's documents to process, held in memory up to a bound and spilled to a
temporary file past it, read back in order as the sequence the plan held before."""

from __future__ import annotations

import pickle
import threading

import pytest

from pipelines.records import SourceItem
from pipelines.spool import Chain, ItemSpool
from pipelines.sync import plan_sync


def _items(n: int) -> list[SourceItem]:
    return [SourceItem(id=f"d/{i:05}.txt", version=f"sha256:{i}", name=f"{i:05}.txt", groups=(f"g{i % 3}",),
                       metadata={"dept": f"d{i % 7}"}, stat=f"{i}:1:2:3:4@5") for i in range(n)]


@pytest.mark.parametrize("n", [0, 3, 10, 11, 37, 500])
def test_spool_reads_back_every_item_in_order(n):
    items = _items(n)
    spool = ItemSpool.build(items, in_memory=10, batch=4)
    assert len(spool) == n and bool(spool) == (n > 0)
    assert list(spool) == items and list(spool) == items  # read twice: the same
    assert spool == items and spool == tuple(items) and tuple(items) == spool
    assert spool.spilled == max(0, (n - 10) // 4 * 4)  # whole batches in the file, the rest in memory
    if n:
        assert spool[0] == items[0] and spool[-1] == items[-1] and spool[n // 2] == items[n // 2]
        assert spool[2:5] == items[2:5]
    with pytest.raises(IndexError):
        spool[n]


def test_spool_keeps_at_most_its_bound_in_memory():
    spool = ItemSpool.build(_items(2000), in_memory=100, batch=50)
    assert len(spool._head) == 100 and len(spool._pending) < 50 and spool.spilled == 1900
    assert isinstance(spool._file.name, int)  # an anonymous file: a descriptor, no name on disk


def test_iterators_have_their_own_positions_also_across_threads():
    items = _items(300)
    spool = ItemSpool.build(items, in_memory=5, batch=7)
    a, b = iter(spool), iter(spool)
    interleaved = [(next(a), next(b)) for _ in range(150)]
    assert [x for x, _ in interleaved] == items[:150] == [y for _, y in interleaved]
    out: list[list[SourceItem]] = []
    threads = [threading.Thread(target=lambda: out.append(list(spool))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert out == [items] * 4


def test_chain_and_pickle_round_trip():
    items = _items(40)
    first, second = ItemSpool.build(items[:25], in_memory=3, batch=4), ItemSpool.build(items[25:], in_memory=3)
    both = first + second
    assert isinstance(both, Chain) and len(both) == 40 and list(both) == items
    assert list(both + (items[0],)) == items + [items[0]] and list(() + first) == items[:25]
    again = pickle.loads(pickle.dumps(first))
    assert isinstance(again, ItemSpool) and list(again) == items[:25]


def test_close_deletes_the_file():
    spool = ItemSpool.build(_items(50), in_memory=1, batch=2)
    f = spool._file
    spool.close()
    assert f.closed and len(spool) == 0 and list(spool) == []


def test_a_large_plan_spills_what_it_adds():
    items = _items(3000)
    plan = plan_sync(items, [], scope="s")
    assert isinstance(plan.added, ItemSpool) and plan.added.spilled > 0
    assert list(plan.to_process) == items and len(plan.to_process) == 3000 and plan.listed == 3000
