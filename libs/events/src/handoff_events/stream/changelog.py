"""Reading a changelog partition on a cold start: the restore's hot path.

A restore reads a few million records once, from a known start to a known end, and
needs from each record only its key and due time: the value can wait until somebody
reads it. An `AIOKafkaConsumer` does more than that
and all of it on the event loop's thread: it decompresses each batch, builds a
`ConsumerRecord` with ten fields per record and a tuple per header, and only asks for
the next batch once the caller has taken the last one. Measured on the bench's
1,000,000 states (zstd, ~4.7 KB each, 2 cores): decompression was 38% of the restore,
record building 30%, and the kernel's page faults for the memory the store grows by
took as much CPU as all the Python code.

`ChangelogReader` does the same job in three overlapping parts:

1. **Fetch ahead.** It sends its own read_committed `Fetch` for the partition through
   the consumer's connected client. As soon as a response arrives, the batch headers
   (never the records) say where the next fetch starts, and that fetch is sent before
   this one is unpacked.
2. **Unpack on a worker thread** (`unpack`): decompression (cramjam releases the GIL)
   and record parsing run next to the event loop, so twelve partitions restoring side
   by side use both cores and the loop stays free for the group's heartbeats.
3. **Keep the batches, not the values.** A restored key points at the record batch
   that holds its latest value, kept as fetched (compressed: ~270 B per 4.7 KB state),
   instead of a copy of the value. The first read of a key unpacks its batch
   (`RestoredBatch.latest`) and keeps that key's value only; a batch none of whose
   keys is ever read again (delivered shipments) is never unpacked. A restore then no
   longer grows the process by the size of every value, which on this machine was half
   its CPU in page faults. The due time the store indexes by is read from each
   record's due header on the worker thread; a value unpacked later keeps its headers
   packed into one msgpack `bytes` (`pack_headers`) rather than a tuple of tuples.

Transactions are honoured the way Kafka specifies for read_committed readers: a
response lists the aborted transactions (producer id, first offset) overlapping the
fetched range; a transactional batch of such a producer is skipped until that
producer's abort marker, and control batches are never records.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

import msgspec
from aiokafka import errors
from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.fetch import FetchRequest
from aiokafka.record.control_record import ABORT_MARKER, ControlRecord
from aiokafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from aiokafka.structs import TopicPartition

Headers = Sequence[tuple[str, bytes | None]]
NO_DUE_HEADER: Final = -1.0
"""`due` of a record written without the due header (an older changelog): the store
has to decode the value to know when it is due. Due times are epoch seconds, never < 0."""
Record = tuple[int, str, bytes | None, list[tuple[str, bytes | None]]]
"""(offset, key, value or None for a tombstone, headers) of one record of a batch."""


class RestoredBatch:
    """A record batch of a changelog as it was fetched (compressed as it was written),
    standing in for the values of the keys whose latest record it holds."""

    __slots__ = ("raw", "start")

    def __init__(self, raw: memoryview | bytes, start: int) -> None:
        self.raw = raw
        self.start = start  # records before the restore's start offset are not its own

    def records(self) -> Iterator[Record]:
        """Its records in offset order, decompressed and parsed again (aiokafka's parser)."""
        start = self.start
        for record in DefaultRecordBatch(self.raw):
            if record.offset >= start:
                key = record.key
                yield record.offset, key.decode() if key else "", record.value, record.headers

    def latest(self) -> dict[str, tuple[bytes | None, list[tuple[str, bytes | None]]]]:
        """The value (None: a tombstone) and headers of each key's last record in the batch.
        Safe on a worker thread: it reads nothing but the batch's own bytes."""
        start = self.start
        out: dict[str, tuple[bytes | None, list[tuple[str, bytes | None]]]] = {}
        for record in DefaultRecordBatch(self.raw):
            if record.offset >= start:
                key = record.key
                out[key.decode() if key else ""] = (record.value, record.headers)
        return out


_CODECS: Final = {
    None: 0,
    "gzip": DefaultRecordBatch.CODEC_GZIP,
    "snappy": DefaultRecordBatch.CODEC_SNAPPY,
    "lz4": DefaultRecordBatch.CODEC_LZ4,
    "zstd": DefaultRecordBatch.CODEC_ZSTD,
}


def pack_batch(
    records: Sequence[tuple[str, bytes, Headers]], compression: str | None
) -> RestoredBatch:
    """Values a store no longer keeps decoded, packed into one record batch the way the
    changelog holds them (the same format and codec), so that they cost what a restored
    key costs and are read back by the same path (`RestoredBatch.latest`). Keys must be
    distinct."""
    builder = DefaultRecordBatchBuilder(2, _CODECS[compression], 0, -1, -1, -1, 1 << 30)
    for offset, (key, value, headers) in enumerate(records):
        if builder.append(offset, None, key.encode(), value, list(headers)) is None:
            raise ValueError("record batch full")  # not reachable below 1 GiB of values
    return RestoredBatch(bytes(builder.build()), 0)


Restored = tuple[str, RestoredBatch | None, float | None]
"""(key, the batch holding its latest value or None for a tombstone, its due time)."""

_READ_COMMITTED = 1
_RETRY_S = 0.2
_RETRIABLE_CODES = frozenset({74, 75})  # FENCED_LEADER_EPOCH, UNKNOWN_LEADER_EPOCH
_pack = msgspec.msgpack.Encoder().encode
_unpack_headers = msgspec.msgpack.Decoder(list[tuple[str, bytes | None]]).decode


def pack_headers(headers: Headers) -> bytes:
    """Record headers as one msgpack value (what a restored store keeps per key)."""
    return _pack(headers)


def unpack_headers(packed: bytes) -> list[tuple[str, bytes | None]]:
    return _unpack_headers(packed)


def due_of_headers(headers: Headers, due_header: str) -> float | None:
    """The due time a record's due header carries: None for an empty header (never
    due), `NO_DUE_HEADER` without one. The last header of that name wins."""
    for name, value in reversed(headers):
        if name == due_header:
            return float(value) if value else None
    return NO_DUE_HEADER


@dataclass(frozen=True, slots=True)
class Fetched:
    """One fetch response for one partition: its record bytes, where each whole batch
    lies in them, the aborted transactions it reported, and where the next fetch starts."""

    data: bytes
    bounds: list[tuple[int, int]]  # [start, end) of each whole batch in `data`
    aborted: list[tuple[int, int]]  # (producer id, first offset)
    next_offset: int


_BATCH_HEADER = 61  # v2 record batch header; its length field counts from byte 12
_MAGIC_AT = 16
_LAST_DELTA_AT = 23


def split_batches(data: bytes) -> tuple[list[tuple[int, int]], int | None]:
    """Where the whole v2 record batches lie in a fetch response's record bytes, and the
    offset after the last one (None without a whole batch). A partial batch at the end
    (the response's size limit cut it) is left for the next fetch."""
    bounds = []
    position, size, last = 0, len(data), None
    while position + _BATCH_HEADER <= size:
        end = position + 12 + int.from_bytes(data[position + 8 : position + 12], "big")
        if end > size:
            break
        if data[position + _MAGIC_AT] != 2:
            raise errors.UnsupportedVersionError(f"record batch magic {data[position + 16]}")
        bounds.append((position, end))
        last = position
        position = end
    if last is None:
        return bounds, None
    base = int.from_bytes(data[last : last + 8], "big")
    delta = int.from_bytes(data[last + _LAST_DELTA_AT : last + _LAST_DELTA_AT + 4], "big")
    return bounds, base + delta + 1


def unpack(fetched: Fetched, start: int, due_header: str | None) -> list[Restored]:
    """The committed data records of a fetch from offset `start` on (a fetch may begin
    mid-batch), in offset order, each pointing at its batch. Runs on a worker thread:
    the batches are decompressed and parsed here for their keys and due headers, and
    only the compressed bytes are kept."""
    out: list[Restored] = []
    append = out.append
    aborted = sorted(fetched.aborted, key=lambda item: item[1])
    aborting: set[int] = set()
    view = memoryview(fetched.data)
    for begin, end in fetched.bounds:
        raw = view[begin:end]
        batch = DefaultRecordBatch(raw)
        producer = batch.producer_id
        if producer is not None and producer >= 0:
            while aborted and aborted[0][1] <= batch.base_offset:
                aborting.add(aborted.pop(0)[0])
            if batch.is_control_batch:
                marker = next(batch)
                if ControlRecord.parse(marker.key) == ABORT_MARKER:
                    aborting.discard(producer)
                continue
            if batch.is_transactional and producer in aborting:
                continue
        elif batch.is_control_batch:
            continue
        holder = RestoredBatch(raw, start)
        for record in batch:
            if record.offset < start:
                continue
            key = record.key
            name = key.decode() if key else ""
            if record.value is None:
                append((name, None, None))
            elif due_header is None:
                append((name, holder, None))
            else:
                append((name, holder, due_of_headers(record.headers, due_header)))
    return out


@functools.cache
def unpackers() -> Executor:
    """The worker threads that unpack fetched batches, shared by every restore of the
    process. More than four buys nothing: record parsing holds the GIL."""
    return ThreadPoolExecutor(
        max_workers=max(2, min(4, os.cpu_count() or 1)), thread_name_prefix="handoff-restore"
    )


class ChangelogReader:
    """Reads one changelog partition with read_committed semantics, one fetch ahead."""

    def __init__(
        self,
        client: AIOKafkaClient,
        tp: TopicPartition,
        *,
        due_header: str | None = None,
        max_wait_ms: int = 50,
        max_bytes: int = 8 * 1024 * 1024,
        executor: Executor | None = None,
    ) -> None:
        self._client = client
        self._tp = tp
        self._due_header = due_header
        self._max_wait_ms = max_wait_ms
        self._max_bytes = max_bytes
        self._executor = executor or unpackers()

    async def read(self, start: int, end: int) -> AsyncGenerator[list[Restored], None]:
        """The records of offsets [start, end) and of whatever else the last fetch
        brought, one list per fetch. `end` must not exceed the last stable offset."""
        loop = asyncio.get_running_loop()
        position = start
        ahead: asyncio.Future[Fetched] | None = None
        if position < end:  # an empty (or already read) partition needs no fetch
            ahead = asyncio.ensure_future(self._fetch(position))
        try:
            while position < end:
                assert ahead is not None
                fetched = await ahead
                ahead = None
                if fetched.next_offset < end:
                    ahead = asyncio.ensure_future(self._fetch(fetched.next_offset))
                records = await loop.run_in_executor(
                    self._executor, unpack, fetched, position, self._due_header
                )
                yield records
                position = max(position, fetched.next_offset)
        finally:
            if ahead is not None:
                ahead.cancel()
                with contextlib.suppress(BaseException):
                    await ahead

    async def _fetch(self, offset: int) -> Fetched:
        """One fetch at `offset`, retried through leader moves and lost connections."""
        tp = self._tp
        while True:
            leader = self._client.cluster.leader_for_partition(tp)
            if leader is None or leader < 0:
                await self._retry()
                continue
            request = FetchRequest(
                self._max_wait_ms,
                1,
                2 * self._max_bytes,
                _READ_COMMITTED,
                [(tp.topic, [(tp.partition, offset, self._max_bytes)])],
            )
            try:
                response = await self._client.send(leader, request)
            except errors.KafkaError as exc:
                if not exc.retriable:
                    raise
                await self._retry()
                continue
            if response.API_VERSION < 4:  # pragma: no cover - every supported broker has v4+
                raise errors.UnsupportedVersionError("Fetch v4+ is needed for read_committed")
            for topic, partitions in response.topics:
                for partition, code, _highwater, *data in partitions:
                    if topic != tp.topic or partition != tp.partition:
                        continue
                    if code == 0:
                        aborted = data[2] if response.API_VERSION >= 11 else data[-2]
                        return self._fetched(offset, data[-1], aborted or [])
                    error = errors.for_code(code)
                    if not (getattr(error, "retriable", False) or code in _RETRIABLE_CODES):
                        raise error(f"fetching {tp} at offset {offset}")
            await self._retry()

    def _fetched(self, offset: int, data: bytes, aborted: list[tuple[int, int]]) -> Fetched:
        bounds, next_offset = split_batches(data)
        if next_offset is None and data:  # bytes but not one whole batch: no fetch progresses
            raise errors.RecordTooLargeError(
                f"{self._tp} at offset {offset}: no whole record batch in {len(data)} B"
            )
        return Fetched(
            data,
            bounds,
            [(int(p), int(o)) for p, o in aborted],
            max(offset, next_offset or offset),
        )

    async def _retry(self) -> None:
        await asyncio.sleep(_RETRY_S)
        with contextlib.suppress(errors.KafkaError):
            await self._client.force_metadata_update()
