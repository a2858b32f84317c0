"""The restore's record unpacking, on record batches built in memory (no broker).

The transaction rules (aborted transactions, control batches) are checked against a
real broker in tests/integration/test_changelog_reader.py; here: offsets, tombstones,
keys, packed headers and the due header.
"""

from __future__ import annotations

from typing import Any

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from handoff_events.stream.changelog import (
    NO_DUE_HEADER,
    Fetched,
    due_of_headers,
    pack_headers,
    unpack,
    unpack_headers,
)

DUE = "handoff_due"


def _batches(
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]],
    base_offset: int = 0,
    compression: int = 4,
) -> list[Any]:
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
    memory = MemoryRecords(bytes(raw))
    out = []
    while memory.has_next():
        out.append(memory.next_batch())
    return out


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


@pytest.mark.parametrize("compression", [0, 4])
def test_unpack_keeps_offsets_from_start_on_with_tombstones_and_packed_headers(
    compression: int,
) -> None:
    batches = _batches(
        [
            (b"shp_a", b"v0", [(DUE, b"10.5")]),
            (b"shp_b", b"v1", []),
            (b"shp_a", None, []),  # tombstone
            (None, b"v3", [("ce_id", b"evt_3"), (DUE, b"")]),
        ],
        base_offset=100,
        compression=compression,
    )
    fetched = Fetched(batches, [], batches[-1].next_offset)

    records = unpack(fetched, start=101, due_header=DUE)

    assert fetched.next_offset == 104
    assert [(key, value, due) for key, value, _, due in records] == [
        ("shp_b", b"v1", NO_DUE_HEADER),
        ("shp_a", None, NO_DUE_HEADER),
        ("", b"v3", None),
    ]
    assert unpack_headers(records[2][2]) == [("ce_id", b"evt_3"), (DUE, b"")]


def test_unpack_without_a_due_index_reads_no_due_time() -> None:
    fetched = Fetched(_batches([(b"k", b"v", [(DUE, b"5.0")])]), [], 1)

    assert [due for *_, due in unpack(fetched, start=0, due_header=None)] == [None]
