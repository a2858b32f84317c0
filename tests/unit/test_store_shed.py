"""A stage's store bounds the values it holds unpacked (`TaskStore.shed`).

Past the bound, the least recently written or read values are packed back into
compressed record batches, as the changelog holds them, and are read back through the
restore's path. These tests check that packing never changes what the store answers,
that it packs the cold keys and keeps the warm ones, and that the due index, the
headers and a snapshot survive it. The engine's use of it, against a broker, is in
tests/integration/test_stream_engine.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from handoff_events.stream import engine as engine_module
from handoff_events.stream.api import MsgpackCodec
from handoff_events.stream.changelog import RestoredBatch, due_of_headers, pack_batch
from handoff_events.stream.engine import DUE_HEADER, TaskStore, _Snapshot
from hypothesis import given, settings
from hypothesis import strategies as st


class Parcel(msgspec.Struct, frozen=True):
    scans: tuple[str, ...]
    due: float | None = None


CODEC = MsgpackCodec(Parcel)


def _due_of(parcel: Parcel) -> datetime | None:
    return None if parcel.due is None else datetime.fromtimestamp(parcel.due, UTC)


def _commit(store: TaskStore[Any], writes: Mapping[str, object]) -> None:
    """One batch through the staging API, as the engine drives it."""
    for key, value in writes.items():
        if value is None:
            store.delete(key)
        else:
            store.put(key, value)
    store.keep_record()
    store.apply_batch()


def test_a_packed_batch_reads_back_every_record_with_its_headers() -> None:
    records = [("shp_1", b"one", [("ce_id", b"a"), ("empty", None)]), ("shp_2", b"two", [])]
    for compression in (None, "zstd", "gzip", "lz4", "snappy"):
        batch = pack_batch(records, compression)
        assert batch.latest() == {
            "shp_1": (b"one", [("ce_id", b"a"), ("empty", None)]),
            "shp_2": (b"two", []),
        }


def test_past_its_bound_a_store_packs_its_least_recently_used_values() -> None:
    store: TaskStore[Parcel] = TaskStore(CODEC, _due_of)
    for n in range(100):
        _commit(store, {f"shp_{n}": Parcel((f"scan {n}",), due=1000.0 + n)})
    _commit(store, {"shp_0": Parcel(("scan 0", "again"), due=5.0)})  # written again: warm
    assert store.get("shp_1") == Parcel(("scan 1",), due=1001.0)  # read, but not unpacked

    packed = store.shed(40, "zstd", 128 * 1024)

    assert packed == 100 - 40 + 40 // 8
    assert store.unpacked == 40 - 40 // 8
    kinds = {key: type(value) for key, value in store.committed.items()}
    assert kinds["shp_0"] is Parcel  # the most recently written stays decoded
    assert kinds["shp_1"] is RestoredBatch  # a read of a decoded value does not warm it
    assert all(kinds[f"shp_{n}"] is Parcel for n in range(66, 100))
    assert all(kinds[f"shp_{n}"] is RestoredBatch for n in range(1, 66))
    assert store.get("shp_7") == Parcel(("scan 7",), due=1007.0)
    assert store.get("shp_0") == Parcel(("scan 0", "again"), due=5.0)
    assert type(store.committed["shp_7"]) is Parcel and store.unpacked == 36  # read back: warm


def test_packing_keeps_the_due_index_and_writes_it_into_the_headers() -> None:
    store: TaskStore[Parcel] = TaskStore(CODEC, _due_of)
    _commit(
        store, {"due": Parcel(("a",), due=30.0), "never": Parcel(("b",)), "warm": Parcel(("c",))}
    )
    store.settle_due(store.take_due(100.0), done=True)  # "due" seen by the timer: leaves the index
    _commit(store, {"warm": Parcel(("c", "d"), due=50.0)})
    before = dict(store.due_at)

    store.shed(1, None, 128 * 1024)

    assert store.due_at == before == {"warm": 50.0}
    for key in ("due", "never"):
        encoded = store.encoded(key)
        assert encoded is not None
        assert due_of_headers(encoded[1], DUE_HEADER) is None  # as the index says, not the value


def test_a_snapshot_after_packing_files_the_same_store() -> None:
    store: TaskStore[Parcel] = TaskStore(CODEC, _due_of)
    _commit(store, {f"k{n}": Parcel((str(n),), due=float(n)) for n in range(50)})
    store.shed(10, "zstd", 200)  # several small batches
    store.get("k3")  # one packed key read back

    snapshot = msgspec.msgpack.decode(
        msgspec.msgpack.encode(store.snapshot(0, CODEC.encode)),
        type=_Snapshot,
    )
    again: TaskStore[Parcel] = TaskStore(CODEC, _due_of)
    again.file_snapshot(snapshot)

    assert len(snapshot.batches) > 1
    assert dict(again.items()) == dict(store.items())
    assert again.due_at == store.due_at


def test_a_store_far_past_its_bound_is_packed_a_slice_per_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a read of everything (a diagnostic), the next commits pack it in slices."""
    monkeypatch.setattr(engine_module, "_SHED_MOST", 5)
    store: TaskStore[Parcel] = TaskStore(CODEC, _due_of)
    _commit(store, {f"k{n}": Parcel((str(n),)) for n in range(20)})

    assert [store.shed(2, "zstd", 1024) for _ in range(5)] == [5, 5, 5, 3, 0]
    assert store.unpacked == 2
    assert dict(store.items()) == {f"k{n}": Parcel((str(n),)) for n in range(20)}


def test_a_store_without_a_codec_keeps_everything() -> None:
    store: TaskStore[bytes] = TaskStore()
    _commit(store, {"a": b"1", "b": b"2"})

    assert store.shed(0, "zstd", 1024) == 0
    assert store.committed == {"a": b"1", "b": b"2"}


_KEYS = st.sampled_from([f"shp_{n}" for n in range(12)])
_OPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("write"),
            st.dictionaries(_KEYS, st.one_of(st.none(), st.text(max_size=30)), max_size=5),
        ),
        st.tuples(st.just("read"), _KEYS),
        st.tuples(st.just("shed"), st.integers(0, 8)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(_OPS)
def test_packing_never_changes_what_the_store_answers(ops: list[tuple[str, object]]) -> None:
    """Against a plain dict: any interleaving of writes, deletes, reads and sheds."""
    store: TaskStore[Parcel] = TaskStore(CODEC, _due_of)
    model: dict[str, Parcel] = {}
    for op, arg in ops:
        if op == "write":
            assert isinstance(arg, dict)
            writes = {
                k: None if v is None else Parcel((v,), due=float(len(v)) or None)
                for k, v in arg.items()
            }
            _commit(store, writes)
            for key, value in writes.items():
                if value is None:
                    model.pop(key, None)
                else:
                    model[key] = value
        elif op == "read":
            assert isinstance(arg, str)
            assert store.get(arg) == model.get(arg)
        else:
            assert isinstance(arg, int)
            store.shed(arg, "zstd", 64)
            assert store.unpacked <= arg
        assert set(store.committed) == set(model)
    assert dict(store.items()) == model
    assert store.due_at == {k: v.due for k, v in model.items() if v.due is not None}
