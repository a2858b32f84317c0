"""The engine's due index (TaskStore): the timer is handed only values that are due, the
index follows every committed write, and a restore rebuilds it from the changelog header
without decoding values."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import msgspec
from handoff_events import topics
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.api import Context, StatefulProcessor
from handoff_events.stream.engine import (
    DUE_HEADER,
    StreamEngine,
    TaskStore,
    _Batch,
    _Context,
    _Task,
)

T0 = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


class Parcel(msgspec.Struct, frozen=True):
    name: str
    due: datetime | None


class CountingCodec:
    def __init__(self) -> None:
        self.decoded = 0

    def encode(self, key: str, value: Parcel) -> tuple[bytes, list[tuple[str, bytes]]]:
        return msgspec.msgpack.encode(value), []

    def decode(self, value: bytes, headers: Sequence[tuple[str, bytes | None]]) -> Parcel:
        self.decoded += 1
        return msgspec.msgpack.decode(value, type=Parcel)


def due_of(parcel: Parcel) -> datetime | None:
    return parcel.due


def _store(codec: CountingCodec | None = None) -> TaskStore[Parcel]:
    return TaskStore(codec or CountingCodec(), due_of)


def _commit(store: TaskStore[Parcel], *parcels: Parcel) -> None:
    for parcel in parcels:
        store.put(parcel.name, parcel)
        store.keep_record()
    store.apply_batch()


def test_only_due_keys_are_taken_in_due_order() -> None:
    store = _store()
    _commit(
        store,
        Parcel("late", T0 + timedelta(hours=2)),
        Parcel("never", None),
        Parcel("early", T0 + timedelta(hours=1)),
    )
    assert store.take_due(T0.timestamp()) == []
    taken = store.take_due((T0 + timedelta(hours=3)).timestamp())
    assert [key for key, _ in taken] == ["early", "late"]


def test_handled_keys_leave_the_index_and_failed_ticks_keep_them() -> None:
    store = _store()
    _commit(store, Parcel("a", T0), Parcel("b", T0))
    now = (T0 + timedelta(minutes=1)).timestamp()
    taken = store.take_due(now)
    store.settle_due(taken, done=False)  # the tick failed: still due next time
    again = store.take_due(now)
    assert sorted(key for key, _ in again) == ["a", "b"]
    store.settle_due(again, done=True)
    assert store.take_due(now + 3600) == []
    assert store.due_at == {}


def test_a_key_rewritten_during_the_tick_keeps_its_new_due_time() -> None:
    store = _store()
    _commit(store, Parcel("a", T0))
    taken = store.take_due(T0.timestamp())
    _commit(store, Parcel("a", T0 + timedelta(hours=5)))  # the timer moved it on
    store.settle_due(taken, done=True)
    assert store.due_at == {"a": (T0 + timedelta(hours=5)).timestamp()}
    assert [k for k, _ in store.take_due((T0 + timedelta(hours=5)).timestamp())] == ["a"]


def test_deleting_or_clearing_the_due_time_removes_the_key() -> None:
    store = _store()
    _commit(store, Parcel("a", T0), Parcel("b", T0))
    store.delete("a")
    store.keep_record()
    _commit(store, Parcel("b", None))
    assert store.take_due(T0.timestamp() + 1) == []


def test_restore_reads_the_header_and_decodes_nothing() -> None:
    codec = CountingCodec()
    store = _store(codec)
    raw = msgspec.msgpack.encode(Parcel("a", T0))
    store.file_encoded("a", raw, [(DUE_HEADER, repr(T0.timestamp()).encode())])
    store.file_encoded("b", msgspec.msgpack.encode(Parcel("b", None)), [(DUE_HEADER, b"")])
    store.file_encoded("gone", raw, [(DUE_HEADER, repr(T0.timestamp()).encode())])
    store.forget("gone")
    store.restored()
    assert codec.decoded == 0
    ctx: _Context[Parcel] = _Context(0, store, T0)
    ctx.due_keys = [key for key, _ in store.take_due(T0.timestamp())]
    assert [key for key, _ in ctx.due()] == ["a"]
    assert codec.decoded == 1  # only the due value, when the timer reads it


def test_restore_without_the_header_decodes_to_find_the_due_time() -> None:
    codec = CountingCodec()
    store = _store(codec)
    store.file_encoded("a", msgspec.msgpack.encode(Parcel("a", T0)), [])
    store.restored()
    assert codec.decoded == 1
    assert [k for k, _ in store.take_due(T0.timestamp())] == ["a"]


def test_without_a_due_function_the_timer_sees_every_value() -> None:
    store: TaskStore[Parcel] = TaskStore(CountingCodec())
    _commit(store, Parcel("a", None), Parcel("b", T0))
    ctx: _Context[Parcel] = _Context(0, store, T0)
    assert sorted(key for key, _ in ctx.due()) == ["a", "b"]


def test_a_commit_reuses_the_due_times_computed_for_the_changelog_headers() -> None:
    calls: list[str] = []

    def counting_due_of(parcel: Parcel) -> datetime | None:
        calls.append(parcel.name)
        return parcel.due

    store: TaskStore[Parcel] = TaskStore(CountingCodec(), counting_due_of)
    for parcel in (Parcel("a", T0), Parcel("b", None), Parcel("c", T0)):
        store.put(parcel.name, parcel)
        store.keep_record()
    # "a" and "b" had their due time computed for the changelog; "c" was not encoded.
    store.apply_batch({"a": T0.timestamp(), "b": None})

    assert calls == ["c"]
    assert store.due_at == {"a": T0.timestamp(), "c": T0.timestamp()}
    assert [key for key, _ in store.take_due(T0.timestamp())] == ["a", "c"]


def test_a_bounded_take_leaves_the_rest_due_earliest_first() -> None:
    store = _store()
    _commit(store, *(Parcel(f"p{n}", T0 + timedelta(seconds=n)) for n in range(10)))
    _commit(store, Parcel("p0", T0 + timedelta(days=1)))  # rewritten: a stale heap entry
    now = (T0 + timedelta(minutes=1)).timestamp()
    first = store.take_due(now, limit=4)
    assert [key for key, _ in first] == ["p1", "p2", "p3", "p4"]
    assert store.has_due(now)
    store.settle_due(first, done=True)
    rest = store.take_due(now, limit=100)
    assert [key for key, _ in rest] == [f"p{n}" for n in range(5, 10)]
    store.settle_due(rest, done=True)
    assert not store.has_due(now)  # p0 is due tomorrow, not now
    assert store.has_due((T0 + timedelta(days=2)).timestamp())


def _engine(seen: list[list[str]], keep: Sequence[str] = ()) -> StreamEngine[Parcel]:
    def punctuate(ctx: Context[Parcel]) -> None:
        seen.append([key for key, _ in ctx.due()])
        for key in keep:
            ctx.keep_due(key)

    processor: StatefulProcessor[Parcel] = StatefulProcessor(
        service="test", stage="timers", inputs=[topics.UPDATES], handle=lambda e, c: None,
        codec=CountingCodec(), punctuate=punctuate, due=due_of,
    )  # fmt: skip
    settings = ServiceSettings(kafka_bootstrap_servers="unused:9092")
    return StreamEngine(processor, settings, clock=lambda: T0 + timedelta(hours=1))


async def test_a_tick_takes_its_share_and_asks_for_the_next_at_once() -> None:
    """A store whose every value is due (a cold start after a long outage) is worked off
    share by share, one transaction each, never in one synchronous call."""
    seen: list[list[str]] = []
    engine = _engine(seen)
    store = _store()
    _commit(store, *(Parcel(f"p{n:03d}", T0 + timedelta(seconds=n)) for n in range(250)))
    task: _Task[Parcel] = _Task(0, store, restored=True)
    later = 1e18  # what the batch loop sets before a tick: the usual interval
    for _ in range(3):
        task.next_punctuate = later
        batch: _Batch[Parcel] = _Batch(generation=None)  # type: ignore[arg-type]
        await engine._tick(task, batch, 100)
        store.settle_due(batch.ticks[0].taken, done=True)  # as a committed batch does
        # More were due after the first two: tick again in the next batch, at once.
        assert task.next_punctuate == (0.0 if len(seen) < 3 else later)
    assert [len(keys) for keys in seen] == [100, 100, 50]
    assert [key for keys in seen for key in keys] == [f"p{n:03d}" for n in range(250)]


async def test_a_value_rewritten_as_still_due_waits_for_the_next_interval() -> None:
    """Only a share that ran out asks for the next tick at once: a timer that writes a
    value back still due must not spin the batch loop."""
    seen: list[list[str]] = []
    engine = _engine(seen)
    store = _store()
    _commit(store, Parcel("a", T0), Parcel("b", T0))
    task: _Task[Parcel] = _Task(0, store, restored=True, next_punctuate=1e18)
    batch: _Batch[Parcel] = _Batch(generation=None)  # type: ignore[arg-type]
    await engine._tick(task, batch, 100)
    # As a punctuator that rewrote it, due again but still in the past.
    _commit(store, Parcel("a", T0 + timedelta(seconds=1)))
    store.settle_due(batch.ticks[0].taken, done=True)
    assert seen == [["a", "b"]]
    assert task.next_punctuate == 1e18
    later = (T0 + timedelta(seconds=2)).timestamp()
    assert [key for key, _ in store.take_due(later)] == ["a"]  # at the next interval


async def test_a_kept_key_is_handed_over_again_at_the_next_interval() -> None:
    """A key the punctuator could not act on (`keep_due`: no free send slot) stays due
    without a write; the rest leave the index. Keeping says "no more now": even with
    the share run out, the next tick waits for the interval."""
    seen: list[list[str]] = []

    def punctuate(ctx: Context[Parcel]) -> None:
        keys = [key for key, _ in ctx.due()]
        seen.append(keys)
        for key in keys[1:]:
            ctx.keep_due(key)  # one send slot per tick

    processor: StatefulProcessor[Parcel] = StatefulProcessor(
        service="test", stage="timers", inputs=[topics.UPDATES], handle=lambda e, c: None,
        codec=CountingCodec(), punctuate=punctuate, due=due_of,
    )  # fmt: skip
    settings = ServiceSettings(kafka_bootstrap_servers="unused:9092")
    engine = StreamEngine(processor, settings, clock=lambda: T0 + timedelta(hours=1))
    store = _store()
    _commit(store, *(Parcel(f"p{n}", T0 + timedelta(seconds=n)) for n in range(4)))
    task: _Task[Parcel] = _Task(0, store, restored=True)
    later = 1e18
    for _ in range(4):
        task.next_punctuate = later
        batch: _Batch[Parcel] = _Batch(generation=None)  # type: ignore[arg-type]
        await engine._tick(task, batch, 3)
        store.settle_due(batch.ticks[0].taken, done=True)
        assert task.next_punctuate == later
    assert seen == [["p0", "p1", "p2"], ["p1", "p2", "p3"], ["p2", "p3"], ["p3"]]
    assert store.due_at == {}


async def test_a_refused_commit_leaves_kept_and_taken_keys_due_once() -> None:
    seen: list[list[str]] = []
    engine = _engine(seen, keep=["b"])
    store = _store()
    _commit(store, Parcel("a", T0), Parcel("b", T0))
    task: _Task[Parcel] = _Task(0, store, restored=True, next_punctuate=1e18)
    batch: _Batch[Parcel] = _Batch(generation=None)  # type: ignore[arg-type]
    await engine._tick(task, batch, 100)
    assert batch.ticks[0].taken == [("a", T0.timestamp())]  # "b" is back in the index
    store.settle_due(batch.ticks[0].taken, done=False)  # the batch's commit was refused
    now = (T0 + timedelta(hours=1)).timestamp()
    assert [key for key, _ in store.take_due(now)] == ["a", "b"]  # each once


def test_keep_due_without_a_due_index_is_a_no_op() -> None:
    ctx: _Context[Parcel] = _Context(0, _store(), T0)
    ctx.keep_due("a")
    assert ctx.kept == set()
