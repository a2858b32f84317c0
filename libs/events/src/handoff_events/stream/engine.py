"""The stream engine: Handoff's one mechanism for exactly-once stateful processing.

How a record's effects become durable exactly once (docs/decisions/0002):

1. One *task* per input partition number. All inputs of a stage are
   co-partitioned (same partition count, murmur2 on the key), and the range
   assignor hands partition p of every input to the same instance, so task p
   sees all events of its keys, in order.
2. Each instance owns ONE transactional producer, `<group>.<instance>`
   (`HANDOFF_INSTANCE_ID`). Zombies are fenced by the consumer group, not by
   the transactional id (KIP-447, `kip447`): every transaction commits its
   input offsets with the group generation and member id the batch started
   under, and the group coordinator refuses a replaced member's commit, which
   aborts its whole transaction.
3. On assignment a task first reads its committed offsets with a *stable*
   OffsetFetch (it waits while a previous owner's transaction is still open),
   then restores its store from the changelog partition p (read_committed, up
   to the last stable offset; `changelog.ChangelogReader`, decision 0008), then
   seeks; readiness is false meanwhile. Values are filed encoded, with their
   headers packed, and decoded on first use; the garbage collector is paused
   while tasks restore and the restored objects are frozen out of later
   collections. A local snapshot written on clean shutdown shortens the
   restore; it is deleted as soon as it is read, so after a crash the store is
   always rebuilt from the changelog alone.
4. A batch takes what every task has queued (a fair share of 4x
   `max_batch_records`), handles each task's records against a staged view of
   its store, runs due timers, and commits it all in ONE Kafka transaction:
   the outputs, the changelog records of every key that changed, the DLQ
   records, and the input offsets of every task in the batch. Only after the
   commit succeeds are the staged changes applied to the in-memory stores. If
   anything fails the transaction is aborted, the tasks are rebuilt from the
   changelog and their inputs re-read from the committed offsets: the outcome
   is as if the failed batch had never been seen. A fenced producer is
   re-opened; three fences within a minute fail the stage.
5. A record that cannot be decoded, or that the handler rejects (or crashes
   on), goes to `<topic>.dlq` with its original bytes and headers plus the
   reason, inside the same transaction; the partition moves on.

The poll loop only hands fetched records to each task's queue; the batch loop
takes, handles and commits. The consumer keeps fetching while a batch commits,
so the next batch grows by itself under load (more records per transaction,
fewer when idle: low latency). A task whose queue is long has its partitions
paused until it catches up. Every batch the producer writes is compressed as
`HANDOFF_KAFKA_COMPRESSION_TYPE` says (decision 0007).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import heapq
import inspect
import itertools
import os
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import aiokafka.producer.sender as aiokafka_sender
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener
from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.errors import ProducerFenced
from aiokafka.structs import ConsumerRecord, TopicPartition

from handoff_events.envelope import DecodeError, Envelope, decode
from handoff_events.runtime import metrics
from handoff_events.runtime.logging import bind_record, get_logger, unbind_record
from handoff_events.runtime.publisher import key_partition
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream import kip447
from handoff_events.stream.api import Emit, MsgpackCodec, Rejected, StateCodec, StatefulProcessor
from handoff_events.stream.changelog import (
    NO_DUE_HEADER,
    ChangelogReader,
    RestoredBatch,
    due_of_headers,
    pack_batch,
    pack_headers,
    unpack_headers,
)
from handoff_events.stream.kip447 import GroupGeneration
from handoff_events.topics import BY_NAME, Names

S = TypeVar("S")
DueOf = Callable[[S], datetime | None]
DUE_HEADER = "handoff_due"
"""Changelog header: when the value next needs the timer (epoch seconds), for the due index."""
log = get_logger("handoff.stream")
_DELETED: Any = object()
Clock = Callable[[], datetime]
_SNAPSHOT_MAX_AGE_S = 3600.0
_YIELD_EVERY = 256
_CALLBACK_STEP_S = 10.0
_OPEN_TASK_S = 300.0
_IDLE_CHECK_S = 2.0
_FENCED_WINDOW_S = 60.0
_FENCED_LIMIT = 3
_UNPACKED_BATCHES = 8
_SHED_SLACK = 1024
"""At most this many keys below its bound a store packs to, so that it packs in slices,
not one key per commit."""
_SHED_MOST = 8192
"""At most this many keys a store packs after one commit (~30 us each), so that a store
that grew by many reads at once (a diagnostic that decodes everything) is packed over
several commits instead of stalling the batch loop; a batch unpacks at most its
records and due keys, 4x `max_batch_records`, so the bound still holds after each."""
Unpacked = dict[str, tuple[bytes | None, list[tuple[str, bytes | None]]]]


class _CollectorPause:
    """The cyclic garbage collector is paused while any task restores, and what the
    restores filed is frozen afterwards (`gc.freeze`).

    A restore files millions of long-lived objects (the values and their headers) in a
    few seconds; every one of them is young, so collections keep walking the growing
    store (measured: ~17% of a 1,000,000-record restore) and, afterwards, every full
    collection walks it again. Stores hold no reference cycles, so nothing is lost by
    not scanning them: their objects are still freed when the store drops them."""

    def __init__(self) -> None:
        self._depth = 0
        self._was_enabled = True

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._depth == 0:
            self._was_enabled = gc.isenabled()
            gc.disable()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0 and self._was_enabled:
                gc.freeze()
                gc.enable()


_collector_paused = _CollectorPause()


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _stamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class _Snapshot(msgspec.Struct):
    """A task's store as of `changelog_offset`, written on a clean hand-over."""

    changelog_offset: int
    entries: list[tuple[str, bytes, list[tuple[str, bytes]]]]
    """Keys with their changelog value and headers."""
    batches: list[tuple[bytes, int]] = []
    """Restored record batches still standing in for values (raw as fetched, start)."""
    batched: list[tuple[str, int, float | None]] = []
    """Keys whose value is still in one of `batches`: (key, index, due time)."""


class _Encoded:
    """A changelog value not decoded yet: a restored key points at its record batch
    (`changelog.RestoredBatch`) until it is read; then it gets its value's bytes and
    packed headers (`changelog.pack_headers`), and the value is decoded. Restore speed
    and memory then scale with the compressed bytes, not with building objects for keys
    that may never be read again."""

    __slots__ = ("packed", "raw")

    def __init__(self, raw: bytes, packed: bytes):
        self.raw = raw
        self.packed = packed

    def headers(self) -> list[tuple[str, bytes | None]]:
        return unpack_headers(self.packed)


def _due_header(at: float | None) -> tuple[str, bytes]:
    return DUE_HEADER, b"" if at is None else repr(at).encode()


class TaskStore(Generic[S]):
    """The committed store of one task plus the staged writes of the batch in flight.

    With a `due_of` function it also keeps the *due index*: when each committed value
    next needs the timer. The index is kept from every committed write and restored
    from the changelog's `handoff_due` header, so neither the timer nor a restore has to
    decode or visit values that are not due.

    A committed value is held in one of three forms: decoded (written or read since it
    was last packed), its changelog bytes (`_Encoded`), or a record batch that holds it
    with other keys' values, compressed (`RestoredBatch`: restored from the changelog,
    or packed by `shed`). The first two are the *unpacked* keys, tracked least recently
    written or unpacked first, so that `shed` can bound them (decision 0008)."""

    def __init__(self, codec: StateCodec[S] | None = None, due_of: DueOf[S] | None = None) -> None:
        self.committed: dict[str, Any] = {}
        self._codec = codec
        self._batch: dict[str, Any] = {}
        self._record: dict[str, Any] = {}
        self._due_of = due_of
        self.due_at: dict[str, float] = {}
        self._due_heap: list[tuple[float, str]] = []
        self._unpacked: OrderedDict[RestoredBatch, Unpacked] = OrderedDict()
        self._hot: dict[str, None] = {}
        """The unpacked keys, least recently written or unpacked first (insertion order)."""

    @property
    def unpacked(self) -> int:
        """How many committed values are held decoded or as their bytes."""
        return len(self._hot)

    def _decoded(self, key: str, value: Any) -> S:
        if type(value) is RestoredBatch:
            value = self._unbatch(key, value)
        if type(value) is _Encoded:
            assert self._codec is not None
            value = self._codec.decode(value.raw, value.headers())
            self.committed[key] = value
            self._hot.pop(key, None)
            self._hot[key] = None
        return value  # type: ignore[no-any-return]

    def _unbatch(self, key: str, batch: RestoredBatch) -> _Encoded:
        """`key` gets its value's bytes from `batch` (its last record there is the one
        restored). Only `key`: the batch's other keys keep pointing at it, so reading
        shipments at random after a cold start grows the process by what is read, not
        by whole batches (decision 0008). The unpacked batch is kept among the last
        `_UNPACKED_BATCHES`, for keys written together and read together."""
        unpacked = self._unpacked.get(batch)
        if unpacked is None:
            unpacked = batch.latest()
            self._keep_unpacked(batch, unpacked)
        else:
            self._unpacked.move_to_end(batch)
        value, headers = unpacked[key]
        assert value is not None  # a key restored from a tombstone is not in the store
        encoded = self.committed[key] = _Encoded(value, pack_headers(headers))
        self._hot[key] = None
        return encoded

    def _keep_unpacked(self, batch: RestoredBatch, unpacked: Unpacked) -> None:
        self._unpacked[batch] = unpacked
        if len(self._unpacked) > _UNPACKED_BATCHES:
            self._unpacked.popitem(last=False)

    def snapshot(
        self,
        changelog_offset: int,
        encode: Callable[[str, S], tuple[bytes, list[tuple[str, bytes]]]],
    ) -> _Snapshot:
        """The committed store as a snapshot: decoded values are encoded, values still in
        a restored batch stay there (the batch is written once, compressed as fetched)."""
        entries: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
        batches: list[tuple[bytes, int]] = []
        batched: list[tuple[str, int, float | None]] = []
        index: dict[int, int] = {}  # id(batch) -> position in `batches` (all kept alive)
        for key, value in self.committed.items():
            kind = type(value)
            if kind is RestoredBatch:
                at = index.get(id(value))
                if at is None:
                    at = index[id(value)] = len(batches)
                    batches.append((bytes(value.raw), value.start))
                batched.append((key, at, self.due_at.get(key)))
            elif kind is _Encoded:
                entries.append((key, value.raw, [(k, v or b"") for k, v in value.headers()]))
            else:
                entries.append((key, *encode(key, value)))
        return _Snapshot(changelog_offset, entries, batches, batched)

    def file_snapshot(self, snapshot: _Snapshot) -> None:
        for key, raw, headers in snapshot.entries:
            self.file_encoded(key, raw, headers)
        holders = [RestoredBatch(raw, start) for raw, start in snapshot.batches]
        for key, at, due in snapshot.batched:
            self.file_restored(key, holders[at], due)  # due: the index's stamp, or None

    def encoded(self, key: str) -> tuple[bytes, list[tuple[str, bytes | None]]] | None:
        """A committed value's changelog bytes and headers if it was never decoded."""
        value = self.committed.get(key)
        if type(value) is RestoredBatch:
            value = self._unbatch(key, value)
        if type(value) is _Encoded:
            return value.raw, value.headers()
        return None

    def file_encoded(
        self, key: str, raw: bytes, headers: Sequence[tuple[str, bytes | None]]
    ) -> None:
        """A changelog record as read (a snapshot's entries, tests)."""
        self.committed[key] = _Encoded(raw, pack_headers(headers))
        self._hot.pop(key, None)
        self._hot[key] = None
        if self._due_of is not None:
            self._file_due(key, due_of_headers(headers, DUE_HEADER))

    def file_restored(self, key: str, batch: RestoredBatch, due: float | None) -> None:
        """A changelog record as `ChangelogReader` restores it: the key points at the batch
        that holds its value; the due time comes from the due header (`NO_DUE_HEADER`:
        the record has none)."""
        self.committed[key] = batch
        self._hot.pop(key, None)
        if self._due_of is not None:
            self._file_due(key, due)

    def _file_due(self, key: str, due: float | None) -> None:
        assert self._due_of is not None
        if due == NO_DUE_HEADER:  # written without the header (older changelog): decode
            due = _stamp(self._due_of(self._decoded(key, self.committed[key])))
        self._set_due(key, due, push=False)

    def clear(self) -> None:
        self.committed.clear()
        self._hot.clear()
        self._unpacked.clear()
        self.due_at.clear()
        self._due_heap.clear()

    def forget(self, key: str) -> None:
        """A tombstone restored from the changelog."""
        self.committed.pop(key, None)
        self._hot.pop(key, None)
        self.due_at.pop(key, None)

    def restored(self) -> None:
        """Restore is complete: build the due heap in one go."""
        self._due_heap = [(at, key) for key, at in self.due_at.items()]
        heapq.heapify(self._due_heap)

    # -- the due index -------------------------------------------------------------------
    def due_stamp(self, value: S) -> float | None:
        return None if self._due_of is None else _stamp(self._due_of(value))

    def _set_due(self, key: str, at: float | None, push: bool = True) -> None:
        if at is None:
            self.due_at.pop(key, None)
            return
        self.due_at[key] = at
        if push:
            heapq.heappush(self._due_heap, (at, key))

    def take_due(self, now: float, limit: int | None = None) -> list[tuple[str, float]]:
        """Keys due at `now` (with the due time they were taken at), earliest first; at
        most `limit` of them, the rest stay due (`has_due`)."""
        heap = self._due_heap
        out: list[tuple[str, float]] = []
        while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
            at, key = heapq.heappop(heap)
            if self.due_at.get(key) == at:
                out.append((key, at))
        return out

    def has_due(self, now: float) -> bool:
        """Whether a key is due at `now` (stale heap entries on top are dropped)."""
        heap = self._due_heap
        while heap and heap[0][0] <= now:
            at, key = heap[0]
            if self.due_at.get(key) == at:
                return True
            heapq.heappop(heap)
        return False

    def settle_due(self, taken: list[tuple[str, float]], done: bool) -> None:
        """After a timer tick: handled keys that were not rewritten leave the index (their
        due time was seen); if the tick failed they stay due."""
        for key, at in taken:
            if self.due_at.get(key) != at:
                continue  # rewritten in the tick: already indexed with its new due time
            if done:
                del self.due_at[key]
            else:
                heapq.heappush(self._due_heap, (at, key))

    def materialize(self) -> dict[str, S]:
        """Every committed value decoded (for queries and tests)."""
        for key in list(self.committed):
            self._decoded(key, self.committed[key])
        return self.committed

    # -- the Store protocol, as seen by handlers --------------------------------------
    def get(self, key: str) -> S | None:
        for layer in (self._record, self._batch):
            if key in layer:
                value = layer[key]
                return None if value is _DELETED else value
        value = self.committed.get(key)
        return None if value is None else self._decoded(key, value)

    def put(self, key: str, value: S) -> None:
        self._record[key] = value

    def delete(self, key: str) -> None:
        self._record[key] = _DELETED

    def items(self) -> Iterator[tuple[str, S]]:
        merged: dict[str, Any] = {**self.materialize(), **self._batch, **self._record}
        for key, value in merged.items():
            if value is not _DELETED:
                yield key, value

    def __len__(self) -> int:
        return sum(1 for _ in self.items())

    # -- staging, driven by the engine -------------------------------------------------
    def keep_record(self) -> None:
        self._batch.update(self._record)
        self._record.clear()

    def drop_record(self) -> None:
        self._record.clear()

    def staged(self) -> dict[str, Any]:
        return self._batch

    def apply_batch(self, due: dict[str, float | None] | None = None) -> None:
        """The batch committed: its writes become the committed store. `due` holds the due
        times already computed for the changelog headers (not computed a second time)."""
        due_of = self._due_of
        known = due or {}
        hot = self._hot
        for key, value in self._batch.items():
            hot.pop(key, None)
            if value is _DELETED:
                self.committed.pop(key, None)
                self.due_at.pop(key, None)
            else:
                self.committed[key] = value
                hot[key] = None
                if due_of is not None:
                    at = known[key] if key in known else _stamp(due_of(value))
                    self._set_due(key, at)
        self._batch.clear()

    def drop_batch(self) -> None:
        self._batch.clear()
        self._record.clear()

    def shed(self, keep: int, compression: str | None, batch_bytes: int) -> int:
        """Bounds the unpacked values: once more than `keep` are held, the least recently
        written or unpacked are encoded (as the changelog holds them, due header from the
        index) and packed into record batches of about `batch_bytes` of values,
        compressed, until an eighth of `keep` (at most `_SHED_SLACK`) is free again, at
        most `_SHED_MOST` of them per call. A packed key is read back like a restored
        one. Returns how many values were packed."""
        hot, codec = self._hot, self._codec
        if len(hot) <= keep or codec is None:
            return 0
        excess = len(hot) - keep + min(keep // 8, _SHED_SLACK)
        cold = list(itertools.islice(hot, min(excess, _SHED_MOST)))
        records: list[tuple[str, bytes, Sequence[tuple[str, bytes | None]]]] = []
        filled = 0
        for key in cold:
            del hot[key]
            value = self.committed[key]
            headers: Sequence[tuple[str, bytes | None]]
            if type(value) is _Encoded:
                raw, headers = value.raw, value.headers()
            else:
                raw, headers = codec.encode(key, value)
                if self._due_of is not None:
                    headers = [*headers, _due_header(self.due_at.get(key))]
            records.append((key, raw, headers))
            filled += len(raw)
            if filled >= batch_bytes:
                self._file_packed(records, compression)
                records, filled = [], 0
        if records:
            self._file_packed(records, compression)
        return len(cold)

    def _file_packed(
        self,
        records: list[tuple[str, bytes, Sequence[tuple[str, bytes | None]]]],
        compression: str | None,
    ) -> None:
        batch = pack_batch(records, compression)
        for key, *_ in records:
            self.committed[key] = batch


@dataclass
class _Context(Generic[S]):
    partition: int
    store: TaskStore[S]
    now: datetime
    topic: str = ""
    offset: int = -1
    key: str | None = None
    emits: list[Emit] = field(default_factory=list)
    due_keys: list[str] | None = None
    kept: set[str] = field(default_factory=set)

    def keep_due(self, key: str) -> None:
        if self.due_keys is not None:  # without a due index every value is visited anyway
            self.kept.add(key)

    def due(self) -> list[tuple[str, S]]:
        if self.due_keys is None:
            return list(self.store.items())
        out = []
        for key in self.due_keys:
            value = self.store.get(key)
            if value is not None:
                out.append((key, value))
        return out

    def emit(self, topic: str, key: str, envelope: Envelope[Any]) -> None:
        if topic not in BY_NAME:
            raise KeyError(f"{topic!r} is not in the topic catalogue")
        self.emits.append(Emit(topic, key, envelope))


@dataclass
class _Task(Generic[S]):
    partition: int
    store: TaskStore[S]
    restored: bool = False
    changelog_end: int = 0
    """A changelog offset the committed store holds everything below: the restore's end,
    then the first offset of each commit's last changelog batch. A snapshot is stamped
    with it, never with the changelog's end at the time of writing: a member dropped from
    its group runs its revoke only when it rejoins, after another owner may already have
    written states this store never saw (decision 0002, "Snapshots")."""
    pending: list[tuple[TopicPartition, ConsumerRecord]] = field(default_factory=list)
    """Fetched, not yet handled (not committed: dropped if the task closes or resets)."""
    opener: asyncio.Task[None] | None = None
    """Opens the task (committed offsets, restore) side by side with the other tasks."""
    closing: bool = False
    paused: bool = False
    next_punctuate: float = 0.0
    next_idle_check: float = 0.0
    batch_started: float | None = None
    progress_at: float = field(default_factory=time.monotonic)
    """When the task last finished a batch (or had nothing to do): the stall watchdog."""
    opening: bool = True
    """Counted in the engine's `_restoring` until its first open ends."""
    committed: dict[TopicPartition, int] = field(default_factory=dict)
    """The group's committed offset of each input partition (read when the task opens,
    moved by every commit). Every transaction re-commits them for the tasks it covers,
    so even a batch of timer output is checked against the group generation."""


@dataclass
class _Tick(Generic[S]):
    """A timer run inside a batch: what it took from the due index, to settle afterwards."""

    task: _Task[S]
    store: TaskStore[S]
    taken: list[tuple[str, float]]


@dataclass
class _Batch(Generic[S]):
    """One transaction's worth of work, across every task that had something to do."""

    generation: GroupGeneration
    tasks: list[_Task[S]] = field(default_factory=list)
    emits: list[Emit] = field(default_factory=list)
    dlq: list[tuple[str, ConsumerRecord, str, str, str | None, str | None]] = field(
        default_factory=list
    )
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    ticks: list[_Tick[S]] = field(default_factory=list)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, engine: StreamEngine[Any]):
        self._engine = engine

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._engine._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._engine._on_assigned(assigned)


async def _end_offset(reader: AIOKafkaConsumer, tp: TopicPartition) -> int:
    return int((await reader.end_offsets([tp]))[tp])


async def settled_end(
    stable_end: Callable[[], Awaitable[int]],
    log_end: int,
    within_s: float,
    what: str,
    poll_s: float = 0.05,
) -> int:
    """The last stable offset (`stable_end`) once it has reached `log_end`, asked again
    every `poll_s`; after `within_s`, the last one seen (logged: a transaction that did
    not end in time)."""
    deadline = time.monotonic() + within_s
    while True:
        stable = await stable_end()
        if stable >= log_end:
            return stable
        if time.monotonic() > deadline:
            log.warning("changelog transaction still open", partition=what,
                        stable_offset=stable, log_end=log_end, waited_s=within_s)  # fmt: skip
            return stable
        await asyncio.sleep(poll_s)


class StreamEngine(Generic[S]):
    """Runs one `StatefulProcessor` with exactly-once effects (see the module docstring)."""

    def __init__(
        self,
        processor: StatefulProcessor[S],
        settings: ServiceSettings,
        clock: Clock | None = None,
    ):
        self.processor = processor
        self.settings = settings
        self.clock = clock or _utcnow
        self.names = Names(settings.topic_prefix)
        self.group_id = self.names.group(processor.service, processor.stage)
        self.transactional_id = _claim_transactional_id(
            f"{self.group_id}.{settings.instance_id or socket.gethostname() + '-' + str(os.getpid())}"
        )
        self.codec: StateCodec[S] | None = processor.codec
        if processor.changelog and self.codec is None:
            raise ValueError(f"{processor.name}: a changelog needs a codec")
        self.tasks: dict[int, _Task[S]] = {}
        self.failure = asyncio.Event()
        self.error: BaseException | None = None
        self._lock = asyncio.Lock()
        self._batch_lock = asyncio.Lock()
        """Held while a batch is handled and committed; a revocation waits for it."""
        self._wake = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._batch_task: asyncio.Task[None] | None = None
        self._stopping = False
        self._joined = False
        self._restoring = 0
        self._accept = {
            self.names(t): frozenset((processor.accept or {}).get(t) or BY_NAME[t].event_types)
            for t in processor.inputs
        }
        self._labels = (processor.service, processor.stage)
        every = processor.punctuate_every_s or settings.punctuate_interval_s
        self._punctuate_every = every
        self._next_lag = 0.0
        self._snapshot_dir = Path(settings.state_dir) / self.group_id
        self._record_counters: dict[str, Any] = {}
        self._short_names: dict[str, str] = {}
        self._progress: dict[TopicPartition, tuple[int, float]] = {}
        self._taskless: dict[int, float] = {}
        self._fenced_at: list[float] = []
        shorten_txn_backoff(settings.txn_retry_backoff_ms)
        kip447.install()

    # ---- public surface --------------------------------------------------------------
    @property
    def ready(self) -> bool:
        return self._joined and self._restoring == 0 and not self.failure.is_set()

    @property
    def stores(self) -> dict[int, dict[str, S]]:
        """Committed store contents per owned partition (read-only use: queries, tests)."""
        return {p: t.store.materialize() for p, t in self.tasks.items()}

    def status(self) -> dict[str, Any]:
        return {
            "ready": self.ready,
            "joined": self._joined,
            "partitions": sorted(self.tasks),
            "restoring": self._restoring,
            "failed": repr(self.error) if self.error else None,
        }

    async def start(self) -> None:
        # The producer first: starting it fences this instance's previous incarnation
        # (same transactional id) and aborts its open transaction before anything is read.
        self._producer = await self._open_producer()
        common = self.settings.kafka_client()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.group_id,
            client_id=f"{self.group_id}-{self.settings.instance_id or os.getpid()}",
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            partition_assignment_strategy=(RangePartitionAssignor,),
            session_timeout_ms=self.settings.session_timeout_ms,
            heartbeat_interval_ms=2_000,
            max_poll_interval_ms=600_000,
            rebalance_timeout_ms=60_000,
            fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **common,  # with the 30 s metadata refresh (see `kafka_client`)
        )
        self._consumer.subscribe(
            [self.names(t) for t in self.processor.inputs], listener=_Rebalance(self)
        )
        await self._consumer.start()
        self._loop_task = asyncio.create_task(self._run(), name=f"engine:{self.processor.name}")
        self._batch_task = asyncio.create_task(
            self._batch_loop(), name=f"batches:{self.processor.name}"
        )

    async def stop(self) -> None:
        """Finish the batch in flight (it commits), close the tasks, leave the group."""
        self._stopping = True
        self._wake.set()
        for runner in (self._loop_task, self._batch_task):
            if runner is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await runner
        async with self._lock:
            for task in list(self.tasks.values()):
                await self._cancel_opener(task)
                self._drop_queued(task)
            if self.processor.punctuate is not None and not self.failure.is_set():
                # A last tick records what timers finished since the previous one (e.g.
                # sends that completed), so a clean shutdown does not leave them to be redone.
                for task in self.tasks.values():
                    task.next_punctuate = 0.0
                with contextlib.suppress(Exception):
                    async with self._batch_lock:
                        await self._run_batch()
            for task in list(self.tasks.values()):
                await self._close_task(task, clean=not self.failure.is_set())
            self.tasks.clear()
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._producer.stop(), _CALLBACK_STEP_S)
            self._producer = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        _IN_USE.discard(self.transactional_id)
        metrics.ASSIGNED.labels(*self._labels).set(0)

    # ---- rebalance -------------------------------------------------------------------
    async def _on_revoked(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            leaving = [self.tasks.pop(p, None) for p in sorted({tp.partition for tp in revoked})]
            tasks = [t for t in leaving if t is not None]
            consumer = self._consumer
            if (
                tasks
                and consumer is not None
                and kip447.group_generation(consumer).generation_id < 0
            ):
                # Dropped from the group (a missed session), revoked only now that it
                # rejoins: the tasks may have had another owner for a while already.
                log.warning("revoked after the group dropped this member",
                            stage=self.processor.name,
                            partitions=[t.partition for t in tasks])  # fmt: skip
            for task in tasks:
                task.closing = True
            await asyncio.gather(*(self._cancel_opener(t) for t in tasks))
            # The batch in flight commits (the generation is still valid here); what is
            # only queued is dropped: the next owner reads it again. Bounded: a callback
            # that hangs gets the member dropped from its group.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._batch_lock.acquire(), _OPEN_TASK_S)
                self._batch_lock.release()
            for task in tasks:
                self._drop_queued(task)
            await asyncio.gather(*(self._close_task(t, clean=True) for t in tasks))
            metrics.ASSIGNED.labels(*self._labels).set(len(self.tasks))

    async def _on_assigned(self, assigned: list[TopicPartition]) -> None:
        partitions = sorted({tp.partition for tp in assigned})
        assert self._consumer is not None
        # Before the first await: nothing of a partition may be fetched for processing
        # until its task is restored (each is resumed when its task opens).
        self._consumer.pause(*(tp for tp in assigned if tp.partition not in self.tasks))
        self._check_copartitioned(assigned, partitions)
        async with self._lock:
            new = [p for p in partitions if p not in self.tasks]
            self._consumer.resume(*(tp for tp in assigned if tp.partition in self.tasks))
            # Each new task opens and restores in its own coroutine, side by side and
            # outside this callback: a callback that takes longer than the session timeout
            # (12 restores in a row did) gets the member evicted, and the group rebalances
            # again, forever. Partitions stay paused until then.
            self._restoring += len(new)
            for p in new:
                task: _Task[S] = _Task(partition=p, store=TaskStore(self.codec, self.processor.due))
                self.tasks[p] = task
                task.opener = asyncio.create_task(
                    self._open_task(task), name=f"open:{self.processor.name}:{p}"
                )
            self._joined = True
            metrics.ASSIGNED.labels(*self._labels).set(len(self.tasks))
        log.info("assigned", stage=self.processor.name, partitions=partitions)

    def _check_copartitioned(self, assigned: list[TopicPartition], partitions: list[int]) -> None:
        have = {(tp.topic, tp.partition) for tp in assigned}
        for p in partitions:
            for topic in self._accept:
                if (topic, p) not in have:
                    raise RuntimeError(
                        f"{self.processor.name}: partition {p} of {topic} not assigned with the "
                        "others: inputs are not co-partitioned (partition counts differ?)"
                    )

    async def _open_task(self, task: _Task[S]) -> None:
        """A task that cannot be opened in time (unreachable coordinator, stuck restore)
        fails the stage loudly: a restart is a recovery, a silently idle member is not."""
        try:
            await asyncio.wait_for(self._prepare(task), _OPEN_TASK_S)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)
        finally:
            self._opened(task)

    async def _prepare(self, task: _Task[S]) -> None:
        """Committed offsets first (stable: an in-flight transaction of the previous owner
        has ended, committed or aborted), then the store from the changelog, then the
        inputs resume exactly where the committed offsets say."""
        assert self._consumer is not None
        partitions = self._task_partitions(task.partition)
        committed = await kip447.fetch_stable_offsets(self._consumer, partitions, _OPEN_TASK_S)
        missing = [tp for tp in partitions if committed.get(tp) is None]
        if self.processor.changelog or missing:
            # A reader of the task's own for offsets and the changelog's fetches: on the
            # consumer's client they would queue behind the long poll that the tasks
            # opened before this one keep in flight (fetch_max_wait_ms).
            topics = [tp.topic for tp in missing]
            if self.processor.changelog:
                topics.append(self.names(self.processor.changelog))
            reader = await self._open_reader(topics)
            try:
                await self._restore(task, reader)
                if missing:  # never committed: from the start of the log
                    begin = await reader.beginning_offsets(missing)
                    committed.update({tp: int(begin[tp]) for tp in missing})
            finally:
                await reader.stop()
        if task.closing:
            return
        task.pending.clear()
        task.committed = {tp: int(offset) for tp, offset in committed.items() if offset is not None}
        for tp, offset in task.committed.items():
            self._consumer.seek(tp, offset)
        task.paused = False
        task.restored = True
        self._consumer.resume(*partitions)
        self._wake.set()

    async def _cancel_opener(self, task: _Task[S]) -> None:
        opener, task.opener = task.opener, None
        if opener is not None and not opener.done():
            opener.cancel()
            with contextlib.suppress(BaseException):
                await opener
        self._opened(task)  # (if it was cancelled before it even started)

    async def _open_producer(self) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            transactional_id=self.transactional_id,
            enable_idempotence=True,
            acks="all",
            linger_ms=1,
            max_batch_size=512 * 1024,
            compression_type=self.settings.kafka_compression(),
            transaction_timeout_ms=self.settings.transaction_timeout_ms,
            request_timeout_ms=30_000,
            # See shorten_txn_backoff for the back-off after CONCURRENT_TRANSACTIONS.
            retry_backoff_ms=20,
            client_id=self.transactional_id,
            **self.settings.kafka_client(),
        )
        await producer.start()
        # Begin+commit an empty transaction: this waits for the producer id, which is the
        # moment a previous incarnation of this transactional id is fenced and its open
        # transaction aborted.
        await producer.begin_transaction()
        await producer.commit_transaction()
        return producer

    async def _close_task(self, task: _Task[S], clean: bool) -> None:
        # Bounded: this runs inside a rebalance callback, and a callback that hangs on an
        # unreachable broker gets the member dropped from its group without anyone noticing.
        if clean and task.restored and self.processor.changelog:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._write_snapshot(task), _CALLBACK_STEP_S)

    # ---- restore ---------------------------------------------------------------------
    def _snapshot_path(self, partition: int) -> Path:
        return self._snapshot_dir / f"{partition}.snapshot"

    async def _write_snapshot(self, task: _Task[S]) -> None:
        assert self.codec is not None and self.processor.changelog
        snapshot = task.store.snapshot(
            task.changelog_end, lambda key, value: self._encode_value(task.store, key, value)
        )
        self._snapshot_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._snapshot_path(task.partition).with_suffix(".tmp")
        tmp.write_bytes(msgspec.msgpack.encode(snapshot))
        tmp.replace(self._snapshot_path(task.partition))

    def _encode_value(
        self,
        store: TaskStore[S],
        key: str,
        value: S,
        due: dict[str, float | None] | None = None,
    ) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The changelog record of a value; with a due index, its due time as a header
        (and, if `due` is given, remembered there for `apply_batch`)."""
        assert self.codec is not None
        raw, headers = self.codec.encode(key, value)
        if self.processor.due is not None:
            at = store.due_stamp(value)
            if due is not None:
                due[key] = at
            headers = [*headers, _due_header(at)]
        return raw, headers

    async def _open_reader(
        self, topics: Sequence[str], isolation: str = "read_committed"
    ) -> AIOKafkaConsumer:
        """A started group-less consumer for a changelog's offsets (read_committed: its end
        is the last stable offset) and the inputs' first ones; a restore fetches through
        its client (`ChangelogReader`). It has the metadata of `topics` (one request): a
        fresh client's first offset request for a topic it has no metadata of fails as
        stale and sleeps `retry_backoff_ms` (100 ms) before asking again, and a task open
        made two or three of those, one after the other."""
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            isolation_level=isolation,
            auto_offset_reset="earliest",
            **self.settings.kafka_security(),
        )
        await reader.start()
        try:
            await reader._client.set_topics(topics)
        except BaseException:
            await reader.stop()
            raise
        return reader

    async def _settled_end(self, reader: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """Where a restore of changelog partition `tp` reads to: its last stable offset,
        once every transaction already written to it has ended.

        The previous owner's last transaction can be committed -- its input offsets
        stable, which `_prepare` waited for -- while its commit marker has not reached
        this partition yet: the coordinator writes a transaction's markers partition by
        partition, on different brokers. A restore to the stable offset of that moment
        misses the states of a batch whose inputs are already consumed, and the next
        event of such a shipment is folded onto its older state: a lost update (the
        chaos scaling run, 2026-11-21). So the stable offset must reach the log end seen
        first. An open transaction of a dead producer ends too, aborted after the
        transaction timeout; past three of those the restore goes on, with a warning."""
        log_reader = await self._open_reader([tp.topic], "read_uncommitted")
        try:
            log_end = int((await log_reader.end_offsets([tp]))[tp])
        finally:
            await log_reader.stop()
        within = max(30.0, 3 * self.settings.transaction_timeout_ms / 1000)
        return await settled_end(
            lambda: _end_offset(reader, tp), log_end, within, f"{tp.topic}[{tp.partition}]"
        )

    async def _restore(self, task: _Task[S], reader: AIOKafkaConsumer) -> None:
        """The task's store from its changelog partition, through `reader` (a started
        `_open_reader`: its offsets, and its client for the fetches)."""
        if not self.processor.changelog:
            return
        assert self.codec is not None
        started = time.monotonic()
        tp = TopicPartition(self.names(self.processor.changelog), task.partition)
        start_offset = 0
        snap_path = self._snapshot_path(task.partition)
        if snap_path.exists() and time.time() - snap_path.stat().st_mtime > _SNAPSHOT_MAX_AGE_S:
            snap_path.unlink()  # older than tombstone retention could cover: distrust it
        if snap_path.exists():
            # Read once, then delete: a crash after this point must not reuse it.
            snapshot = msgspec.msgpack.decode(snap_path.read_bytes(), type=_Snapshot)
            snap_path.unlink()
            task.store.file_snapshot(snapshot)
            start_offset = snapshot.changelog_offset
        count = 0
        with _collector_paused():  # the store grows by millions of objects
            end = await self._settled_end(reader, tp)
            begin = int((await reader.beginning_offsets([tp]))[tp])
            if start_offset < begin or start_offset > end:
                task.store.clear()  # snapshot older than retained changelog: start afresh
                start_offset = begin
            changelog = ChangelogReader(
                reader._client,
                tp,
                due_header=DUE_HEADER if self.processor.due is not None else None,
            )
            file_restored, forget = task.store.file_restored, task.store.forget
            async with contextlib.aclosing(changelog.read(start_offset, end)) as fetches:
                async for records in fetches:
                    for key, batch, due in records:  # the hot loop of a cold start
                        if batch is None:
                            forget(key)
                        else:
                            file_restored(key, batch, due)
                    count += len(records)
        task.store.restored()
        task.changelog_end = end
        metrics.RESTORE_SECONDS.labels(*self._labels).observe(time.monotonic() - started)
        metrics.RESTORED_RECORDS.labels(*self._labels).inc(count)
        log.info(
            "restored",
            stage=self.processor.name,
            partition=task.partition,
            records=count,
            keys=len(task.store.committed),
            seconds=round(time.monotonic() - started, 3),
        )

    # ---- the loops -------------------------------------------------------------------
    def _fail(self, exc: BaseException) -> None:
        if self.error is None:
            self.error = exc
            log.error("stage failed", stage=self.processor.name, error=repr(exc))
        self.failure.set()
        self._wake.set()

    async def _run(self) -> None:
        """The poll loop: fetch, hand each task its records, watch lag and the tasks."""
        assert self._consumer is not None
        consumer = self._consumer
        try:
            while not self._stopping:
                batch = await consumer.getmany(
                    timeout_ms=self.settings.poll_timeout_ms,
                    max_records=self.settings.max_batch_records,
                )
                if batch:
                    self._dispatch(consumer, batch)
                now = time.monotonic()
                if now >= self._next_lag:
                    self._next_lag = now + 2.0
                    self._record_lag(consumer)
                if self.failure.is_set():
                    return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    def _dispatch(
        self, consumer: AIOKafkaConsumer, batch: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        """Queue fetched records on their tasks (no await: nothing interleaves)."""
        high_water = 2 * self.settings.max_batch_records
        for tp, records in batch.items():
            task = self.tasks.get(tp.partition)
            if task is None or task.closing or not task.restored:
                # Revoked, dropped or not open yet: never skip records of a partition we
                # may still own; rewind so they are fetched again (harmless if revoked).
                with contextlib.suppress(Exception):
                    consumer.seek(tp, records[0].offset)
                continue
            task.pending.extend((tp, r) for r in records)
            self._wake.set()
            if not task.paused and len(task.pending) >= high_water:
                task.paused = True
                consumer.pause(*self._task_partitions(task.partition))

    def _drop_queued(self, task: _Task[S]) -> None:
        """Forget the records fetched for `task` but not handled, and move the consumer back
        to the first of them. A task with nothing queued commits the consumer's position
        (`_run_batch`, past commit markers): without the seek, a batch after this one (a
        stop's last timer tick) committed past records nobody handled, and they were lost
        (the chaos scaling run, 2026-11-22)."""
        first: dict[TopicPartition, int] = {}
        for tp, record in task.pending:
            if record.offset < first.get(tp, record.offset + 1):
                first[tp] = record.offset
        task.pending.clear()
        if self._consumer is not None:
            for tp, offset in first.items():
                with contextlib.suppress(Exception):  # no longer assigned: nothing to keep
                    self._consumer.seek(tp, offset)

    def _task_partitions(self, partition: int) -> list[TopicPartition]:
        return [TopicPartition(t, partition) for t in self._accept]

    def _positions(self, task: _Task[S]) -> dict[TopicPartition, int]:
        """The consumer's position of each input partition of the task (the next offset it
        will hand over: past transaction markers and aborted records it skipped)."""
        assert self._consumer is not None
        assignment = self._consumer._subscription.subscription.assignment
        out = {}
        for tp in self._task_partitions(task.partition):
            with contextlib.suppress(Exception):
                position = assignment.state_value(tp).position
                if position is not None:
                    out[tp] = int(position)
        return out

    def _opened(self, task: _Task[S]) -> None:
        """The task is no longer opening (restored, failed or cancelled): readiness count."""
        if task.opening:
            task.opening = False
            self._restoring -= 1

    def _live(self) -> list[_Task[S]]:
        return [t for t in self.tasks.values() if t.restored and not t.closing]

    async def _batch_loop(self) -> None:
        """One transaction at a time for the whole instance: take what every task has
        queued, handle it, run the timers that are due, and commit it all at once."""
        try:
            while not self._stopping and not self.failure.is_set():
                live = self._live()
                if not any(t.pending for t in live):
                    now = time.monotonic()
                    wait = _IDLE_CHECK_S
                    if self.processor.punctuate is not None:
                        for task in live:
                            wait = min(wait, max(0.0, task.next_punctuate - now))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                    self._wake.clear()
                    if self._stopping or self.failure.is_set():
                        break
                async with self._batch_lock:
                    await self._run_batch()
                await asyncio.sleep(0)  # let the poll loop and rebalance callbacks in
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._fail(exc)

    async def _run_batch(self) -> None:
        assert self._consumer is not None
        live = self._live()
        if not live:
            return
        started = time.monotonic()
        batch: _Batch[S] = _Batch(kip447.group_generation(self._consumer))
        busy = sum(1 for t in live if t.pending) or 1
        share = max(64, -(-4 * self.settings.max_batch_records // busy))
        punctuate = self.processor.punctuate
        # The batch's timers together take about as many due keys as it takes records.
        due_share = max(64, self.settings.max_batch_records // len(live))
        now = time.monotonic()
        for task in live:
            took = False
            # Upstream transactions end with a commit marker the engine never handles, so
            # committing "last handled + 1" would leave a drained partition one short of
            # the log end forever: a phantom lag for monitoring, KEDA and operators. When a
            # task's queue is empty, everything below the consumer's position was handed
            # to it, so the position itself is the exact offset to commit. It is read
            # before any await (nothing can be queued for the task in between).
            reach: dict[TopicPartition, int] | None = None
            if task.pending:
                items, task.pending = task.pending[:share], task.pending[share:]
                if not task.pending:
                    reach = self._positions(task)
                if task.paused and len(task.pending) < self.settings.max_batch_records:
                    task.paused = False
                    self._consumer.resume(*self._task_partitions(task.partition))
                # Merge co-partitioned inputs by record time (then input order): stable.
                items.sort(key=_timestamp)
                task.batch_started = started
                await self._handle(task, items, batch)
                took = True
            elif now >= task.next_idle_check:
                task.next_idle_check = now + _IDLE_CHECK_S
                reach = self._positions(task)
            if punctuate is not None and now >= task.next_punctuate:
                task.next_punctuate = now + self._punctuate_every
                await self._tick(task, batch, due_share)
                took = True
            if reach:
                for tp, position in reach.items():
                    if position > max(task.committed.get(tp, position), batch.offsets.get(tp, 0)):
                        batch.offsets[tp] = position
                        took = True
            if took:
                batch.tasks.append(task)
        if batch.tasks:
            try:
                await self._commit(batch)
            finally:
                done = time.monotonic()
                for task in batch.tasks:
                    task.batch_started = None
                    task.progress_at = done
            metrics.BATCH_SECONDS.labels(*self._labels).observe(time.monotonic() - started)

    async def _handle(
        self, task: _Task[S], items: list[tuple[TopicPartition, ConsumerRecord]], batch: _Batch[S]
    ) -> None:
        ctx: _Context[S] = _Context(task.partition, task.store, self.clock(), emits=batch.emits)
        offsets = batch.offsets
        dlq = batch.dlq
        handle = self.processor.handle
        service, stage = self._labels
        counted: dict[str, int] = {}
        short = self._short_names
        for position, (tp, record) in enumerate(items):
            if position and not position % _YIELD_EVERY:
                # Let heartbeats, HTTP requests and the poll loop run during a long batch.
                await asyncio.sleep(0)
            offsets[tp] = record.offset + 1
            topic = short.get(tp.topic)
            if topic is None:
                topic = short[tp.topic] = self.names.unprefixed(tp.topic)
            counted[topic] = counted.get(topic, 0) + 1
            try:
                envelope = decode(record.value, record.headers, self._accept[tp.topic])
            except DecodeError as err:
                dlq.append((tp.topic, record, err.reason, err.message, err.field, err.value_text))
                continue
            ctx.topic, ctx.offset = topic, record.offset
            ctx.key = record.key.decode(errors="replace") if record.key else None
            mark = len(ctx.emits)
            token = bind_record(
                {
                    "ce_id": envelope.id,
                    "tenant": envelope.tenant_id,
                    "subject": envelope.subject,
                    "topic": topic,
                    "partition": tp.partition,
                    "offset": record.offset,
                }
            )
            try:
                result = handle(envelope, ctx)
                if result is not None and inspect.isawaitable(result):
                    await result
            except Rejected as rej:
                del ctx.emits[mark:]
                task.store.drop_record()
                dlq.append((tp.topic, record, rej.reason, rej.message, rej.field, rej.value))
                continue
            except Exception as exc:
                del ctx.emits[mark:]
                task.store.drop_record()
                log.exception("handler failed; record sent to the DLQ", stage=stage)
                dlq.append((tp.topic, record, "handler_error", repr(exc)[:300], None, None))
                continue
            finally:
                unbind_record(token)
            task.store.keep_record()
        counters = self._record_counters
        for topic, n in counted.items():
            counter = counters.get(topic)
            if counter is None:
                counter = counters[topic] = metrics.RECORDS.labels(service, stage, topic)
            counter.inc(n)

    async def _tick(self, task: _Task[S], batch: _Batch[S], limit: int) -> None:
        """The processor's timer for one task, inside the batch (after its records), for
        at most `limit` due keys."""
        punctuate = self.processor.punctuate
        assert punctuate is not None
        store = task.store
        ctx: _Context[S] = _Context(task.partition, store, self.clock(), emits=batch.emits)
        taken: list[tuple[str, float]] = []
        more = False
        if self.processor.due is not None:
            # A bounded share per tick, so one transaction never holds the whole store's
            # timers: a cold start after a long outage (every promise passed) would
            # otherwise fold a million states in one synchronous call, miss the group's
            # session and redo it all after the rebalance, forever. The rest stay due and
            # the next batch ticks again at once (only when the share ran out: a value the
            # timer rewrites as due again waits for the next interval, as before).
            stamp = ctx.now.timestamp()
            taken = store.take_due(stamp, limit)
            ctx.due_keys = [key for key, _ in taken]
            more = len(taken) >= limit and store.has_due(stamp)
        mark = len(batch.emits)
        try:
            result = punctuate(ctx)
            if inspect.isawaitable(result):
                await result
            store.keep_record()
            if taken:
                await asyncio.sleep(0)  # heartbeats and the poll loop between tasks' timers
        except Exception:
            del batch.emits[mark:]
            store.drop_record()
            store.settle_due(taken, done=False)
            log.exception("punctuator failed", stage=self.processor.name)
            return
        if ctx.kept:
            # Keys the punctuator could not act on yet (`keep_due`): due again at the next
            # interval. It said it can do no more now, so no tick at once either.
            kept = [(key, at) for key, at in taken if key in ctx.kept]
            taken = [(key, at) for key, at in taken if key not in ctx.kept]
            store.settle_due(kept, done=False)
        elif more:
            task.next_punctuate = 0.0
        batch.ticks.append(_Tick(task, store, taken))

    async def _commit(self, batch: _Batch[S]) -> bool:
        """The batch's one transaction: outputs, changelog, DLQ and the input offsets of
        every task in it, committed under the group generation the batch started in."""
        producer = self._producer
        assert producer is not None
        service, stage = self._labels
        offsets: dict[TopicPartition, int] = {}
        for task in batch.tasks:
            offsets.update(task.committed)
        offsets.update(batch.offsets)
        began = time.monotonic()
        dues: dict[int, dict[str, float | None]] = {}
        changelog = self.names(self.processor.changelog) if self.processor.changelog else None
        written: dict[int, int] = {}  # changelog partition -> first offset of its last batch
        try:
            await producer.begin_transaction()
            outgoing: list[
                tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]], int | None]
            ] = []
            for emit in batch.emits:
                value, headers = _encode(emit.envelope)
                outgoing.append((self.names(emit.topic), emit.key.encode(), value, headers, None))
            if changelog is not None:
                for task in batch.tasks:
                    due = dues[task.partition] = {}
                    for key, value in task.store.staged().items():
                        if value is _DELETED:
                            outgoing.append((changelog, key.encode(), None, [], task.partition))
                        else:
                            raw, headers = self._encode_value(task.store, key, value, due)
                            outgoing.append((changelog, key.encode(), raw, headers, task.partition))
            for topic, record, reason, message, fld, val in batch.dlq:
                d = _dlq_record(topic, record, reason, message, fld, val, service)
                outgoing.append((d["topic"], d["key"], d["value"], d["headers"], None))
                metrics.DLQ.labels(service, stage, self.names.unprefixed(topic), reason).inc()
                log.warning(
                    "record dead-lettered",
                    topic=self.names.unprefixed(topic),
                    partition=record.partition,
                    offset=record.offset,
                    reason=reason,
                    field=fld,
                )
            caps = {}
            if changelog is not None:
                caps[changelog] = self.settings.changelog_batch_bytes
            futures = await _send_batched(producer, outgoing, caps)
            await kip447.send_offsets_fenced(producer, offsets, self.group_id, batch.generation)
            await producer.commit_transaction()
            for fut in futures:
                sent = fut.result()  # the RecordMetadata of a batch: its first offset
                if sent.topic == changelog:
                    written[sent.partition] = max(written.get(sent.partition, 0), sent.offset)
        except kip447.GroupMoved as exc:
            # A rebalance replaced this member's generation: the group refused the offsets
            # and the whole transaction is aborted. The stores are as committed; the tasks
            # re-read from their committed offsets, unless the rebalance takes them away.
            metrics.TRANSACTIONS.labels(service, stage, "refused").inc()
            log.warning("transaction refused by the group; rewinding", error=str(exc))
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            self._settle_ticks(batch, done=False)
            for task in batch.tasks:
                self._rewind(task)
            return False
        except ProducerFenced as exc:
            # The coordinator bumped this producer's epoch: either it aborted the
            # transaction for running past transaction_timeout_ms (a broker paused longer
            # than that, say), or another live process uses this instance's
            # transactional id. Either way nothing of the batch committed under our
            # epoch; recover like any failed transaction -- but fenced again and again
            # means a twin, and the stage fails so that someone notices.
            metrics.TRANSACTIONS.labels(service, stage, "fenced").inc()
            self._settle_ticks(batch, done=False)
            now = time.monotonic()
            self._fenced_at = [t for t in self._fenced_at if now - t < _FENCED_WINDOW_S]
            self._fenced_at.append(now)
            if len(self._fenced_at) >= _FENCED_LIMIT:
                self._fail(
                    RuntimeError(
                        f"{self.processor.name}: transactional id {self.transactional_id} was "
                        f"fenced {len(self._fenced_at)} times in {_FENCED_WINDOW_S:.0f}s "
                        f"({exc!r}); is HANDOFF_INSTANCE_ID unique?"
                    )
                )
                return False
            log.warning("producer fenced; re-opening it and rebuilding the batch's tasks")
            await self._recover(batch.tasks)
            return False
        except Exception as exc:
            metrics.TRANSACTIONS.labels(service, stage, "aborted").inc()
            log.warning("transaction failed; rebuilding its tasks", error=repr(exc))
            with contextlib.suppress(Exception):
                await producer.abort_transaction()
            self._settle_ticks(batch, done=False)
            await self._recover(batch.tasks)
            return False
        metrics.COMMIT_SECONDS.labels(service, stage).observe(time.monotonic() - began)
        for task in batch.tasks:
            task.store.apply_batch(dues.get(task.partition))
            task.changelog_end = max(task.changelog_end, written.get(task.partition, 0))
            for tp in self._task_partitions(task.partition):
                if tp in offsets:
                    task.committed[tp] = offsets[tp]
        self._shed()
        self._settle_ticks(batch, done=True)
        metrics.TRANSACTIONS.labels(service, stage, "committed").inc()
        emitted: dict[str, int] = {}
        for emit in batch.emits:
            emitted[emit.topic] = emitted.get(emit.topic, 0) + 1
        for topic, n in emitted.items():
            metrics.EMITTED.labels(service, stage, topic).inc(n)
        metrics.STORE_KEYS.labels(service, stage).set(
            sum(len(t.store.committed) for t in self.tasks.values())
        )
        metrics.STORE_UNPACKED.labels(service, stage).set(
            sum(t.store.unpacked for t in self.tasks.values())
        )
        return True

    def _shed(self) -> None:
        """After a commit: every restored task's store within its share of
        `store_unpacked_max` (a task outside the batch may have grown by reads)."""
        limit = self.settings.store_unpacked_max
        if limit <= 0 or self.codec is None or not self.processor.changelog:
            return
        keep = max(1, limit // max(1, len(self.tasks)))
        compression, batch_bytes = (
            self.settings.kafka_compression(),
            self.settings.changelog_batch_bytes,
        )
        packed = 0
        for task in self.tasks.values():
            if task.restored and task.store.unpacked > keep:
                packed += task.store.shed(keep, compression, batch_bytes)
        if packed:
            metrics.STORE_PACKED.labels(*self._labels).inc(packed)

    def _settle_ticks(self, batch: _Batch[S], done: bool) -> None:
        for tick in batch.ticks:
            if tick.task.store is tick.store:  # not rebuilt
                tick.store.settle_due(tick.taken, done=done)

    def _rewind(self, task: _Task[S]) -> None:
        """Forget what was handled but not committed: the staged writes and the queue; the
        inputs are fetched again from the committed offsets."""
        assert self._consumer is not None
        task.store.drop_batch()
        task.pending.clear()
        if task.closing or self.tasks.get(task.partition) is not task:
            return
        for tp, offset in task.committed.items():
            with contextlib.suppress(Exception):
                self._consumer.seek(tp, offset)
        task.paused = False
        self._consumer.resume(*self._task_partitions(task.partition))

    async def _recover(self, tasks: list[_Task[S]]) -> None:
        """After a transaction failed for an unknown reason (its outcome may be unknown): a
        fresh producer (same transactional id: it fences the old epoch and ends whatever
        the broker still had open), then every task of the batch re-opened from Kafka:
        stable committed offsets, the store from the changelog."""
        assert self._consumer is not None
        for task in tasks:
            self._consumer.pause(*self._task_partitions(task.partition))
            task.store.drop_batch()
            task.pending.clear()
        old, self._producer = self._producer, None
        if old is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(old.stop(), _CALLBACK_STEP_S)
        self._producer = await self._open_producer()
        for task in tasks:
            if task.closing or self.tasks.get(task.partition) is not task:
                continue
            task.store = TaskStore(self.codec, self.processor.due)
            task.restored = False
            await asyncio.wait_for(self._prepare(task), _OPEN_TASK_S)

    def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        seen: set[TopicPartition] = set()
        limit = self.settings.stall_timeout_s
        queued = {p: len(t.pending) for p, t in self.tasks.items()}
        for tp in consumer.assignment():
            # Lag up to the last stable offset: an upstream transaction still open is not
            # work this stage could do yet.
            high = consumer.last_stable_offset(tp)
            if high is None or high < 0:
                high = consumer.highwater(tp)
            if high is None:
                continue
            try:
                position = consumer._subscription.subscription.assignment.state_value(tp).position
            except Exception:
                continue
            if position is None:
                continue
            topic = self.names.unprefixed(tp.topic)
            # Records still in the task's queue are fetched but not done: they count.
            lag = max(0, high - position) + queued.get(tp.partition, 0)
            metrics.LAG.labels(*self._labels, topic, str(tp.partition)).set(lag)
            seen.add(tp)
            # Stall watchdog, part 1: records waiting but the position has not moved for a
            # long time means this member is wedged. Fail the stage so the process is
            # restarted.
            last = self._progress.get(tp)
            if last is None or last[0] != position or lag == 0 or self._restoring:
                self._progress[tp] = (position, now)
            elif now - last[1] > limit:
                self._fail(
                    RuntimeError(
                        f"{self.processor.name}: {topic}[{tp.partition}] has {lag} records "
                        f"waiting and made no progress for {now - last[1]:.0f}s"
                    )
                )
        for tp in set(self._progress) - seen:
            del self._progress[tp]
        self._watch_tasks(consumer, now, limit)

    def _watch_tasks(self, consumer: AIOKafkaConsumer, now: float, limit: float) -> None:
        """Stall watchdog, part 2: what the fetch position cannot show. Records already
        fetched into a task's queue (or a batch in flight) with no batch finished for the
        stall timeout; or an assigned partition with no task at all (and no rebalance came)."""
        for task in self.tasks.values():
            if not task.restored:
                continue
            if not task.pending and task.batch_started is None:
                task.progress_at = now
            elif now - task.progress_at > limit:
                self._fail(
                    RuntimeError(
                        f"{self.processor.name}: task {task.partition} has "
                        f"{len(task.pending)} records queued and finished no batch for "
                        f"{now - task.progress_at:.0f}s"
                    )
                )
        assigned = {tp.partition for tp in consumer.assignment()}
        for p in assigned - set(self.tasks):
            since = self._taskless.setdefault(p, now)
            if now - since > limit:
                self._fail(
                    RuntimeError(
                        f"{self.processor.name}: partition {p} is assigned here but has had "
                        f"no task for {now - since:.0f}s"
                    )
                )
        for p in set(self._taskless) - (assigned - set(self.tasks)):
            del self._taskless[p]


_IN_USE: set[str] = set()


def _claim_transactional_id(base: str) -> str:
    """The instance's transactional id: stable across restarts when HANDOFF_INSTANCE_ID is
    (a restart then fences its previous incarnation at once), and unique among the
    engines of one process (tests and benchmarks run several instances side by side)."""
    candidate, n = base, 1
    while candidate in _IN_USE:
        n += 1
        candidate = f"{base}-{n}"
    _IN_USE.add(candidate)
    return candidate


def shorten_txn_backoff(ms: float) -> None:
    """Make aiokafka retry a transaction's first AddPartitionsToTxn after `ms`, not 20 ms.

    Right after a commit (the more so one with consumer offsets) the coordinator is still
    writing the commit markers and answers the next transaction's AddPartitionsToTxn with
    CONCURRENT_TRANSACTIONS; aiokafka 0.14 then sleeps a hard-coded `BACKOFF_OVERRIDE`
    (20 ms, after KAFKA-5477). Measured on the bench broker: 27 ms per transaction with
    it, 7 ms with 2 ms. Process-wide (it is a module constant); pinned aiokafka version,
    and `test_engine_txn_backoff` fails if the constant disappears."""
    if not hasattr(aiokafka_sender, "BACKOFF_OVERRIDE"):
        raise RuntimeError("aiokafka.producer.sender.BACKOFF_OVERRIDE is gone: re-check 0002")
    aiokafka_sender.BACKOFF_OVERRIDE = ms / 1000.0


def _timestamp(item: tuple[TopicPartition, ConsumerRecord]) -> int:
    return int(item[1].timestamp)


async def _send_batched(
    producer: AIOKafkaProducer,
    outgoing: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]], int | None]],
    caps: dict[str, int] | None = None,
) -> list[asyncio.Future[Any]]:
    """Send records as record batches per (topic, partition): far cheaper than one `send`
    per record. A topic in `caps` gets a new batch before its value bytes would pass the
    cap (the changelog: `changelog_batch_bytes`); others fill batches up to the
    producer's size.

    The batches go out in rounds: the first batch of every partition, then the second
    of every partition that has one, and so on. aiokafka keeps one produce request in
    flight per broker, a partition's next batch waits until its previous one was
    drained into a request, and each request takes at most one batch per partition. Sent
    partition after partition, a transaction with k batches for a partition would wait
    k - 1 round trips before the next partition's first batch was even queued; in rounds,
    the whole transaction takes as many round trips as its longest partition has batches.

    Partitions are chosen by the producer's own partitioner (murmur2 on the key, as the Java
    client does), so co-partitioning holds exactly as with `send`."""
    groups: dict[
        tuple[str, int], list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]]
    ] = {}
    known: set[str] = set()
    for topic, key, value, headers, fixed_partition in outgoing:
        if topic not in known:
            await producer.partitions_for(topic)
            known.add(topic)
        if fixed_partition is not None:
            partition = fixed_partition
        elif key is not None:
            partition = _partition_of(key, len(producer._metadata.partitions_for_topic(topic)))
        else:
            partition = producer._partition(topic, None, None, None, key, value)
        groups.setdefault((topic, partition), []).append((key, value, headers))
    caps = caps or {}
    built: list[tuple[str, int, list[Any]]] = []
    for (topic, partition), records in groups.items():
        batch = producer.create_batch()
        batches = [batch]
        cap, filled = caps.get(topic), 0
        for key, value, headers in records:
            size = len(value) if value else 0
            if (cap is not None and filled and filled + size > cap) or batch.append(
                key=key, value=value, timestamp=None, headers=headers
            ) is None:
                batch, filled = producer.create_batch(), 0
                batches.append(batch)
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    raise ValueError(f"record too large for one batch on {topic}")
            filled += size
        built.append((topic, partition, batches))
    futures: list[asyncio.Future[Any]] = []
    for round_ in range(max((len(batches) for *_, batches in built), default=0)):
        for topic, partition, batches in built:
            if round_ < len(batches) and batches[round_].record_count():
                futures.append(
                    await producer.send_batch(batches[round_], topic, partition=partition)
                )
    return futures


@functools.lru_cache(maxsize=65_536)
def _partition_of(key: bytes, partitions: int) -> int:
    """The Java client's default partition of a key, cached: murmur2 is Python code, and the
    same keys (shipment ids) come back often."""
    return key_partition(key, partitions)


def _encode(envelope: Envelope[Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    from handoff_events.envelope import encode

    return encode(envelope)


def _dlq_record(
    topic: str,
    record: ConsumerRecord,
    reason: str,
    message: str,
    field_path: str | None,
    value: str | None,
    service: str,
) -> dict[str, Any]:
    headers = list(record.headers or ())
    headers += [
        ("handoff_dlq_reason", reason.encode()),
        ("handoff_dlq_message", message[:500].encode()),
        ("handoff_dlq_topic", topic.encode()),
        ("handoff_dlq_partition", str(record.partition).encode()),
        ("handoff_dlq_offset", str(record.offset).encode()),
        ("handoff_dlq_service", service.encode()),
        ("handoff_dlq_at", datetime.now(UTC).isoformat().encode()),
    ]
    if field_path:
        headers.append(("handoff_dlq_field", field_path.encode()))
    if value is not None:
        headers.append(("handoff_dlq_value", value[:200].encode(errors="replace")))
    return {"topic": f"{topic}.dlq", "value": record.value, "key": record.key, "headers": headers}


__all__ = ["MsgpackCodec", "StreamEngine", "TaskStore"]
