"""Storage contract, read side: stream reads, global reads, filters, paging, counts, snapshots."""

from __future__ import annotations

import pytest

from store_svc.engine import MAX_READ_LIMIT, EventStore, ExpectedVersion, SnapshotRecord
from tests.integration.store_engine.support import T0, Harness, at, new_event, uid

pytestmark = pytest.mark.integration


async def _seed(store: EventStore, kind: str) -> tuple[str, str, int]:
    """Two streams, events of two types at T0+0..T0+5 s; returns (a, b, base position).

    Position order: a1(t0) b1(t1) a2(t2) b2(t3) a3(t4) a4(t5)
    """
    a, b = f"agg-{uid()}", f"agg-{uid()}"
    base = store.head_position()
    plan = [(a, "created", 0), (b, "created", 1), (a, "changed", 2), (b, "changed", 3)]
    plan += [(a, "changed", 4), (a, "changed", 5)]
    for stream, suffix, second in plan:
        await store.append(
            stream, "thing", ExpectedVersion.ANY, [new_event(f"{kind}.{suffix}")], now=at(second)
        )
    return a, b, base


async def test_read_stream_ranges_and_limit(harness: Harness) -> None:
    store = await harness.open()
    a, _, _ = await _seed(store, f"k{uid()}")
    assert [e.version for e in await store.read_stream(a)] == [1, 2, 3, 4]
    assert [e.version for e in await store.read_stream(a, from_version=2)] == [2, 3, 4]
    assert [e.version for e in await store.read_stream(a, to_version=2)] == [1, 2]
    assert [e.version for e in await store.read_stream(a, from_version=2, limit=2)] == [2, 3]
    assert await store.read_stream(a, from_version=5) == []
    assert await store.read_stream(a, from_version=3, to_version=2) == []
    assert await store.read_stream(f"agg-{uid()}") == []


async def test_read_stream_until_is_the_stream_as_it_was(harness: Harness) -> None:
    store = await harness.open()
    a, _, _ = await _seed(store, f"k{uid()}")
    assert [e.version for e in await store.read_stream(a, until=at(2))] == [1, 2]
    assert [e.version for e in await store.read_stream(a, until=at(1.5))] == [1]
    assert await store.read_stream(a, until=at(-1)) == []
    assert len(await store.read_stream(a, until=at(100))) == 4
    # A caller's clock that went backwards: version 2 is later than version 3.
    odd = f"agg-{uid()}"
    for second in (0, 10, 5, 20):
        await store.append(odd, "thing", ExpectedVersion.ANY, [new_event()], now=at(second))
    # As of T0+6 s, only version 1 existed as an unbroken history; never [1, 3].
    assert [e.version for e in await store.read_stream(odd, until=at(6))] == [1]
    assert [e.version for e in await store.read_stream(odd, until=at(10))] == [1, 2, 3]


async def test_read_all_filters_paging_and_count(harness: Harness) -> None:
    store = await harness.open()
    kind = f"k{uid()}"
    a, b, base = await _seed(store, kind)
    everything = await store.read_all(after_position=base)
    assert [e.position for e in everything] == list(range(base + 1, base + 7))
    assert [e.aggregate_id for e in everything] == [a, b, a, b, a, a]

    page1 = await store.read_all(after_position=base, limit=4)
    page2 = await store.read_all(after_position=page1[-1].position, limit=4)
    assert [e.position for e in page1 + page2] == list(range(base + 1, base + 7))

    changed = (f"{kind}.changed",)
    by_type = await store.read_all(after_position=base, event_types=changed)
    assert [e.position - base for e in by_type] == [3, 4, 5, 6]
    both = (f"{kind}.changed", f"{kind}.created")
    assert len(await store.read_all(after_position=base, event_types=both)) == 6
    by_stream = await store.read_all(after_position=base, aggregate_id=b)
    assert [e.position - base for e in by_stream] == [2, 4]
    a_changed = await store.read_all(after_position=base, aggregate_id=a, event_types=changed)
    assert [e.version for e in a_changed] == [2, 3, 4]
    window = await store.read_all(after_position=base, since=at(1), until=at(3))
    assert [e.position - base for e in window] == [2, 3, 4]  # both bounds inclusive
    filtered_page = await store.read_all(after_position=base + 3, limit=2, event_types=changed)
    assert [e.position - base for e in filtered_page] == [4, 5]
    assert await store.read_all(after_position=base + 6) == []

    assert await store.count(event_types=changed) == 4
    assert await store.count(event_types=both) == 6
    assert await store.count(aggregate_id=a) == 4
    assert await store.count(aggregate_id=a, event_types=(f"{kind}.created",)) == 1
    assert await store.count(aggregate_id=a, since=at(2), until=at(4)) == 2
    assert await store.count() >= 6

    with pytest.raises(ValueError, match="limit"):
        await store.read_all(limit=MAX_READ_LIMIT + 1)
    with pytest.raises(ValueError, match="timezone"):
        await store.read_all(since=T0.replace(tzinfo=None))


async def test_aggregate_ids_page_in_order(harness: Harness) -> None:
    store = await harness.open()
    prefix = f"agg-{uid()}-"
    ids = [f"{prefix}{n:02d}" for n in (7, 3, 11, 5, 1)]
    for aggregate_id in ids:
        await store.append(aggregate_id, "thing", ExpectedVersion.ANY, [new_event()], now=T0)
    await store.append(ids[0], "thing", ExpectedVersion.ANY, [new_event()], now=T0)  # 2 events

    seen: list[str] = []
    after = prefix
    while True:
        page = await store.aggregate_ids(after=after, limit=2)
        mine = [i for i in page if i.startswith(prefix)]
        seen.extend(mine)
        if len(mine) < len(page) or not page:
            break
        after = page[-1]
    assert seen == sorted(ids)


async def test_snapshots_round_trip(harness: Harness) -> None:
    store = await harness.open()
    stream = f"agg-{uid()}"
    assert await store.latest_snapshot(stream) is None
    await store.append(stream, "thing", ExpectedVersion.ANY, [new_event()] * 1, now=T0)
    await store.append(stream, "thing", ExpectedVersion.ANY, [new_event(), new_event()], now=T0)
    old = SnapshotRecord(stream, 1, 1, b'{"v":1}', at(1.5))
    new = SnapshotRecord(stream, 3, 2, b"\x00\xffstate", at(2.25))
    await store.save_snapshot(new)
    await store.save_snapshot(old)  # saved later, but an older version
    assert await store.latest_snapshot(stream) == new
    with pytest.raises(ValueError, match="snapshot version"):
        await store.save_snapshot(SnapshotRecord(stream, 4, 1, b"{}", T0))

    # Snapshots are storage, not memory: a reopened store sees them.
    await store.close()
    reopened = await harness.open()
    assert await reopened.latest_snapshot(stream) == new
