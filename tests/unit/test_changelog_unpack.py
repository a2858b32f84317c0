"""The restore's record unpacking, on record batches built in memory (no broker).

The transaction rules (aborted transactions, control batches) are checked against a
real broker in tests/integration/test_changelog_reader.py; here: batch boundaries,
offsets, tombstones, keys, the due header, and a store whose keys point at their batch
until one of them is read.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from handoff_events.stream.changelog import (
    NO_DUE_HEADER,
    Fetched,
    RestoredBatch,
    due_of_headers,
    pack_headers,
    split_batches,
    unpack,
    unpack_headers,
)
from handoff_events.stream.engine import _UNPACKED_BATCHES, DUE_HEADER, TaskStore, _Snapshot

DUE = DUE_HEADER


Rec = tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]


def _batch(records: list[Rec], base_offset: int = 0, compression: int = 4) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=compression,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta, (key, value, headers) in enumerate(records):
        assert builder.append(delta, timestamp=0, key=key, value=value, headers=headers)
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big")  # the broker assigns offsets on append
    return bytes(raw)


def _fetched(*batches: bytes, cut: int = 0) -> Fetched:
    data = b"".join(batches)
    data = data[: len(data) - cut]
    bounds, next_offset = split_batches(data)
    assert next_offset is not None
    return Fetched(data, bounds, [], next_offset)


def test_packed_headers_come_back_as_they_went_in() -> None:
    headers = [("ce_id", b"evt_1"), ("empty", None), ("ce_id", b"evt_2")]

    assert unpack_headers(pack_headers(headers)) == headers


@pytest.mark.parametrize(
    ("headers", "due"),
    [
        ([("ce_id", b"x"), (DUE, b"1795287600.25")], 1795287600.25),
        ([(DUE, b"1.0"), (DUE, b"2.5")], 2.5),  # the last one wins
        ([(DUE, b"")], None),  # never due
        ([(DUE, None)], None),
        ([("ce_id", b"x")], NO_DUE_HEADER),  # an older changelog: decode to know
    ],
)
def test_the_due_time_comes_from_the_last_due_header(
    headers: list[tuple[str, bytes | None]], due: float | None
) -> None:
    assert due_of_headers(headers, DUE) == due


def test_split_finds_whole_batches_and_leaves_a_cut_one_for_the_next_fetch() -> None:
    first = _batch([(b"a", b"1", []), (b"b", b"2", [])], base_offset=10)
    second = _batch([(b"c", b"3", [])], base_offset=12)

    bounds, next_offset = split_batches(first + second)
    cut_bounds, cut_next = split_batches(first + second[:-5])

    assert bounds == [(0, len(first)), (len(first), len(first) + len(second))]
    assert next_offset == 13
    assert cut_bounds == [(0, len(first))] and cut_next == 12
    assert split_batches(second[:-1]) == ([], None)


@pytest.mark.parametrize("compression", [0, 4])
def test_unpack_keeps_offsets_from_start_on_with_tombstones_and_due_times(
    compression: int,
) -> None:
    fetched = _fetched(
        _batch(
            [
                (b"shp_a", b"v0", [(DUE, b"10.5")]),
                (b"shp_b", b"v1", []),
                (b"shp_a", None, []),  # tombstone
                (None, b"v3", [("ce_id", b"evt_3"), (DUE, b"")]),
            ],
            base_offset=100,
            compression=compression,
        )
    )

    records = unpack(fetched, start=101, due_header=DUE)

    assert fetched.next_offset == 104
    assert [(key, batch is None, due) for key, batch, due in records] == [
        ("shp_b", False, NO_DUE_HEADER),
        ("shp_a", True, None),
        ("", False, None),
    ]
    batch = records[0][1]
    assert batch is not None
    assert [(offset, key, value) for offset, key, value, _ in batch.records()] == [
        (101, "shp_b", b"v1"),
        (102, "shp_a", None),
        (103, "", b"v3"),
    ]


def test_unpack_without_a_due_index_reads_no_due_time() -> None:
    fetched = _fetched(_batch([(b"k", b"v", [(DUE, b"5.0")])]))

    assert [due for *_, due in unpack(fetched, start=0, due_header=None)] == [None]


def test_a_restored_key_reads_its_latest_value_from_its_batch() -> None:
    """Keys point at the batch that holds their latest record; reading one gives that key
    its value and leaves the batch's other keys pointing at the batch."""
    store: TaskStore[bytes] = TaskStore()
    fetched = _fetched(
        _batch(
            [
                (b"shp_a", b"a-old", [("ce_id", b"1")]),
                (b"shp_b", b"b-only", [("ce_id", b"2")]),
                (b"shp_a", b"a-new", [("ce_id", b"3")]),
            ]
        ),
        _batch([(b"shp_c", b"c-first", [])], base_offset=3),
        _batch([(b"shp_c", b"c-later", [("ce_id", b"5")])], base_offset=4),
    )
    for key, batch, due in unpack(fetched, start=0, due_header=None):
        assert batch is not None
        store.file_restored(key, batch, due)

    assert store.encoded("shp_a") == (b"a-new", [("ce_id", b"3")])
    assert type(store.committed["shp_b"]) is RestoredBatch  # not unpacked with shp_a
    assert store.encoded("shp_b") == (b"b-only", [("ce_id", b"2")])
    assert store.encoded("shp_c") == (b"c-later", [("ce_id", b"5")])
    assert set(store.committed) == {"shp_a", "shp_b", "shp_c"}


def test_a_snapshot_keeps_restored_batches_as_batches_and_the_due_index() -> None:
    """A clean hand-over's snapshot writes each still-unread batch once, compressed as it
    was fetched, and a store filed from the snapshot reads the same values and due times."""
    due_of: Any = lambda value: None  # noqa: E731 - due times come from the headers here
    store: TaskStore[bytes] = TaskStore(due_of=due_of)
    fetched = _fetched(
        _batch([(b"a", b"va", [(DUE, b"30.0")]), (b"b", b"vb", [(DUE, b"")])]),
        _batch([(b"c", b"vc", [(DUE, b"10.0")])], base_offset=2),
    )
    for key, batch, due in unpack(fetched, start=0, due_header=DUE):
        assert batch is not None
        store.file_restored(key, batch, due)
    assert store.encoded("c") == (b"vc", [(DUE, b"10.0")])  # read once: no longer batched

    snapshot = msgspec.msgpack.decode(
        msgspec.msgpack.encode(store.snapshot(3, lambda key, value: (value, []))),
        type=_Snapshot,
    )
    again: TaskStore[bytes] = TaskStore(due_of=due_of)
    again.file_snapshot(snapshot)

    assert len(snapshot.batches) == 1 and [k for k, *_ in snapshot.batched] == ["a", "b"]
    assert [key for key, *_ in snapshot.entries] == ["c"]
    assert {k: again.encoded(k) for k in "abc"} == {k: store.encoded(k) for k in "abc"}
    assert again.due_at == store.due_at == {"a": 30.0, "c": 10.0}


def test_reading_restored_keys_unpacks_a_batch_once_while_it_is_among_the_last_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Keys written together are often read together: a batch stays unpacked among the
    last `_UNPACKED_BATCHES` a store read from, and is unpacked again once it fell out."""
    unpacked: list[int] = []
    latest = RestoredBatch.latest

    def counted(self: RestoredBatch) -> Any:
        unpacked.append(1)
        return latest(self)

    monkeypatch.setattr(RestoredBatch, "latest", counted)
    store: TaskStore[bytes] = TaskStore()
    others = _UNPACKED_BATCHES + 1
    fetched = _fetched(
        _batch([(b"a", b"va", []), (b"b", b"vb", []), (b"c", b"vc", [])]),
        *(_batch([(f"o{n}".encode(), b"v", [])], base_offset=3 + n) for n in range(others)),
    )
    for key, batch, due in unpack(fetched, start=0, due_header=None):
        assert batch is not None
        store.file_restored(key, batch, due)

    assert [store.encoded(k) for k in "ab"] == [(b"va", []), (b"vb", [])]
    assert len(unpacked) == 1
    for n in range(others):
        store.encoded(f"o{n}")
    assert store.encoded("c") == (b"vc", [])
    assert len(unpacked) == 2 + others  # the first batch was unpacked a second time
