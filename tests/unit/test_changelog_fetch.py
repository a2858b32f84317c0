"""`ChangelogReader`'s fetch loop against a scripted client: what it retries, what it
raises, and that it reads ahead. (Its records are compared with a real consumer's in
tests/integration/test_changelog_reader.py.)"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka import errors
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition
from handoff_events.stream import changelog
from handoff_events.stream.changelog import ChangelogReader

TP = TopicPartition("state", 3)


def _batch(base_offset: int, count: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=4,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta in range(count):
        builder.append(
            delta, timestamp=0, key=f"shp_{base_offset + delta}".encode(), value=b"v", headers=[]
        )
    raw = bytearray(builder.build())
    raw[0:8] = base_offset.to_bytes(8, "big")
    return bytes(raw)


@dataclass
class _Response:
    topics: list[Any]
    API_VERSION: int = 11


def _answer(code: int, records: bytes = b"") -> _Response:
    # v11 partition layout: partition, error, high water, LSO, log start, aborted,
    # preferred read replica, records
    return _Response([(TP.topic, [(TP.partition, code, 100, 100, 0, [], -1, records)])])


@dataclass
class _Cluster:
    leader: int | None = 1

    def leader_for_partition(self, tp: TopicPartition) -> int | None:
        return self.leader


@dataclass
class _Client:
    """Answers each fetch with the next scripted response (or raises it)."""

    script: list[_Response | Exception]
    cluster: _Cluster = field(default_factory=_Cluster)
    offsets: list[int] = field(default_factory=list)
    refreshed: int = 0

    async def send(self, node: int, request: Any) -> _Response:
        self.offsets.append(request.topics[0][1][0][1])
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def force_metadata_update(self) -> bool:
        self.refreshed += 1
        self.cluster.leader = 1
        return True


async def _read(client: _Client, start: int, end: int) -> list[str]:
    reader = ChangelogReader(client, TP)  # type: ignore[arg-type]
    keys: list[str] = []
    async with contextlib.aclosing(reader.read(start, end)) as fetches:
        async for records in fetches:
            keys.extend(key for key, _, _ in records)
    return keys


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(changelog, "_RETRY_S", 0.0)


def test_the_next_fetch_starts_where_the_last_whole_batch_ended() -> None:
    client = _Client([_answer(0, _batch(0, 3) + _batch(3, 2)), _answer(0, _batch(5, 4))])

    keys = asyncio.run(_read(client, 0, 9))

    assert keys == [f"shp_{i}" for i in range(9)]
    assert client.offsets == [0, 5]


def test_leader_moves_and_lost_connections_are_retried_after_a_metadata_refresh() -> None:
    client = _Client(
        [
            _answer(errors.NotLeaderForPartitionError.errno),
            errors.KafkaConnectionError("broker restarted"),
            _answer(74),  # FENCED_LEADER_EPOCH: not in aiokafka's table, retriable in Kafka's
            _answer(0, _batch(0, 2)),
        ],
        cluster=_Cluster(leader=None),  # unknown at first: refresh before the first fetch
    )

    keys = asyncio.run(_read(client, 0, 2))

    assert keys == ["shp_0", "shp_1"]
    assert client.offsets == [0, 0, 0, 0]
    assert client.refreshed == 4


def test_an_offset_out_of_range_is_raised_not_retried() -> None:
    client = _Client([_answer(errors.OffsetOutOfRangeError.errno)])

    with pytest.raises(errors.OffsetOutOfRangeError):
        asyncio.run(_read(client, 0, 2))


def test_bytes_without_one_whole_batch_fail_instead_of_fetching_the_same_offset_forever() -> None:
    client = _Client([_answer(0, _batch(0, 2)[:-3])])

    with pytest.raises(errors.RecordTooLargeError):
        asyncio.run(_read(client, 0, 2))


def test_an_empty_partition_is_not_fetched() -> None:
    client = _Client([])

    assert asyncio.run(_read(client, 7, 7)) == []
    assert client.offsets == []
