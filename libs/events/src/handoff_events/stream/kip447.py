"""Group-metadata fencing (KIP-447) for aiokafka's transactional producer.

aiokafka 0.14 commits a transaction's consumer offsets with TxnOffsetCommit v0, which
carries no consumer-group generation: a zombie (an instance the group has already
replaced) can only be fenced through its transactional id, so every input partition
needs its own transactional producer. KIP-447 moves the fencing to the group: the
offset commit names the member and generation it was made under, and the group
coordinator refuses it (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID, ...) once the group has
moved on, which aborts the zombie's whole transaction. Its other half is the reader's:
OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT while a transaction
that commits offsets for the partition is still open, so a new owner never starts
from offsets that an in-flight transaction is about to move.

This module adds both to aiokafka without forking it:

- `send_offsets_fenced(producer, offsets, group_id, generation)` commits offsets with
  TxnOffsetCommit v3 (generation id, member id). Refusals by the group raise
  `GroupMoved` from the transaction and leave it abortable.
- `fetch_stable_offsets(consumer, partitions)` reads committed offsets with
  OffsetFetch v7 and `require_stable`, retrying while a transaction is pending.

Both rely on aiokafka internals (the sender's `TxnOffsetCommitHandler`, the
consumer's coordinator and client) of the pinned version; `tests/unit/test_kip447.py`
fails if those move. See docs/decisions/0002.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass
from typing import Any, TypeAlias

import aiokafka.producer.sender as aiokafka_sender
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, errors
from aiokafka.client import ConnectionGroup
from aiokafka.producer.transaction_manager import TransactionState
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.types import (
    Boolean,
    CompactArray,
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)
from aiokafka.structs import TopicPartition

UNKNOWN_GENERATION = -1
_UNSTABLE_OFFSET_COMMIT = 88
_GROUP_MOVED_CODES = {
    errors.IllegalGenerationError.errno,  # 22
    errors.UnknownMemberIdError.errno,  # 25
    errors.RebalanceInProgressError.errno,  # 27
    82,  # FENCED_INSTANCE_ID
}


class GroupMoved(errors.KafkaError):  # type: ignore[misc]
    """The group coordinator refused a transactional offset commit: the member or
    generation it was made under is no longer current (a rebalance replaced it). The
    transaction is abortable; the partitions may belong to another instance now."""

    retriable = False


@dataclass(frozen=True)
class GroupGeneration:
    """What a consumer's group membership was when a batch started (Java's
    `ConsumerGroupMetadata`)."""

    generation_id: int
    member_id: str
    group_instance_id: str | None = None

    @property
    def valid(self) -> bool:
        return self.generation_id >= 0 and bool(self.member_id)


def group_generation(consumer: AIOKafkaConsumer) -> GroupGeneration:
    """The consumer's current generation and member id (not valid while it rejoins)."""
    coordinator = consumer._coordinator
    if coordinator is None:
        return GroupGeneration(UNKNOWN_GENERATION, "")
    return GroupGeneration(int(coordinator.generation), str(coordinator.member_id or ""))


def _by_topic(*partition_fields: tuple[str, Any]) -> CompactArray:
    """A flexible-version `topics` array: each topic's name, then its partitions with
    `partition_fields` (and the tagged fields every level of these messages ends with)."""
    return CompactArray(
        ("name", CompactString("utf-8")),
        ("partitions", CompactArray(*partition_fields, ("tags", TaggedFields))),
        ("tags", TaggedFields),
    )


# ---- TxnOffsetCommit v3 -------------------------------------------------------------------
class TxnOffsetCommitResponse_v3(Response):  # type: ignore[misc]
    API_KEY = 28
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        ("topics", _by_topic(("partition_index", Int32), ("error_code", Int16))),
        ("tags", TaggedFields),
    )


class TxnOffsetCommitRequest_v3(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 28
    API_VERSION = 3
    RESPONSE_TYPE = TxnOffsetCommitResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")),
        ("group_id", CompactString("utf-8")),
        ("producer_id", Int64),
        ("producer_epoch", Int16),
        ("generation_id", Int32),
        ("member_id", CompactString("utf-8")),
        ("group_instance_id", CompactString("utf-8")),
        (
            "topics",
            _by_topic(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("committed_metadata", CompactString("utf-8")),
            ),
        ),
        ("tags", TaggedFields),
    )


TxnOffsetCommitStruct: TypeAlias = TxnOffsetCommitRequest_v3


class TxnOffsetCommitRequest(Request[TxnOffsetCommitStruct]):  # type: ignore[misc]
    API_KEY = 28

    def __init__(self, fields: tuple[Any, ...]):
        self._fields = fields

    def build(self, request_struct_class: type[TxnOffsetCommitStruct]) -> TxnOffsetCommitStruct:
        return request_struct_class(*self._fields)


_BaseHandler: Any = aiokafka_sender.TxnOffsetCommitHandler


class _FencedTxnOffsetCommitHandler(_BaseHandler):  # type: ignore[misc]
    """aiokafka's handler, sending v3 with the generation when the transaction has one."""

    def _generation(self) -> GroupGeneration | None:
        return getattr(self._sender._txn_manager, "handoff_generation", None)

    def create_request(self) -> Any:
        generation = self._generation()
        if generation is None:
            return super().create_request()
        txn = self._sender._txn_manager
        topics: dict[str, list[tuple[int, int, int, str, dict[int, bytes]]]] = (
            collections.defaultdict(list)
        )
        for tp, offset in sorted(self._offsets.items()):
            topics[tp.topic].append((tp.partition, offset.offset, -1, offset.metadata or "", {}))
        return TxnOffsetCommitRequest(
            (
                txn.transactional_id,
                self._group_id,
                txn.producer_id,
                txn.producer_epoch,
                generation.generation_id,
                generation.member_id,
                generation.group_instance_id,
                [(topic, parts, {}) for topic, parts in topics.items()],
                {},
            )
        )

    def handle_response(self, resp: Any) -> Any:
        if self._generation() is None:
            return super().handle_response(resp)
        # Re-shape v3's answer into v0's (topic, [(partition, error)]) for aiokafka's own
        # handling, except the group's refusals, which abort only this transaction.
        shaped = []
        for topic, partitions, _tags in resp.topics:
            for partition, code, _ptags in partitions:
                if code in _GROUP_MOVED_CODES:
                    error = errors.for_code(code)
                    _abortable(
                        self._sender._txn_manager,
                        GroupMoved(
                            f"{self._group_id}: offset commit for {topic}[{partition}] refused "
                            f"({error.__name__}): the group has moved on"
                        ),
                    )
                    return None
            shaped.append((topic, [(p, code) for p, code, _ in partitions]))
        return super().handle_response(_Shaped(shaped))


def _abortable(txn: Any, exc: BaseException) -> None:
    """Put the transaction in the abortable-error state, failing the pending offset commit.

    Not aiokafka's `error_transaction`: that also forgets the partitions already in the
    transaction, after which `abort_transaction` believes the transaction is empty and
    never sends EndTxn -- the broker keeps it open, and the next transaction of the same
    producer continues it and commits the zombie's records with its own (found by
    tests/integration/test_group_fencing.py)."""
    txn._transition_to(TransactionState.ABORTABLE_ERROR)
    txn._pending_txn_partitions.clear()
    for _, _, fut in txn._pending_txn_offsets:
        fut.set_exception(exc)
    txn._pending_txn_offsets.clear()
    txn._transaction_waiter.set_exception(exc)
    txn._transaction_waiter.exception()  # seen: commit_transaction() raises it again


class _Shaped:
    def __init__(self, errors_: list[tuple[str, list[tuple[int, int]]]]):
        self.errors = errors_


def install() -> None:
    """Route aiokafka's transactional offset commits through the v3 handler (idempotent).
    Producers without a generation set keep aiokafka's v0 request."""
    if aiokafka_sender.TxnOffsetCommitHandler is not _FencedTxnOffsetCommitHandler:
        if not hasattr(aiokafka_sender, "TxnOffsetCommitHandler"):
            raise RuntimeError("aiokafka's TxnOffsetCommitHandler is gone: re-check 0002")
        aiokafka_sender.TxnOffsetCommitHandler = _FencedTxnOffsetCommitHandler


async def send_offsets_fenced(
    producer: AIOKafkaProducer,
    offsets: dict[TopicPartition, int],
    group_id: str,
    generation: GroupGeneration,
) -> None:
    """`send_offsets_to_transaction`, fenced by the group: the commit is refused (and
    `GroupMoved` raised) unless `generation` is still the group's current one."""
    if not generation.valid:
        raise GroupMoved(f"{group_id}: no current generation (rejoining)")
    install()
    producer._txn_manager.handoff_generation = generation
    await producer.send_offsets_to_transaction(offsets, group_id)


# ---- OffsetFetch v7 (require_stable) ------------------------------------------------------
class OffsetFetchResponse_v7(Response):  # type: ignore[misc]
    API_KEY = 9
    API_VERSION = 7
    SCHEMA = Schema(
        ("throttle_time_ms", Int32),
        (
            "topics",
            _by_topic(
                ("partition_index", Int32),
                ("committed_offset", Int64),
                ("committed_leader_epoch", Int32),
                ("metadata", CompactString("utf-8")),
                ("error_code", Int16),
            ),
        ),
        ("error_code", Int16),
        ("tags", TaggedFields),
    )


class OffsetFetchRequest_v7(RequestStruct):  # type: ignore[misc]
    FLEXIBLE_VERSION = True
    API_KEY = 9
    API_VERSION = 7
    RESPONSE_TYPE = OffsetFetchResponse_v7
    SCHEMA = Schema(
        ("group_id", CompactString("utf-8")),
        (
            "topics",
            CompactArray(
                ("name", CompactString("utf-8")),
                ("partition_indexes", CompactArray(Int32)),
                ("tags", TaggedFields),
            ),
        ),
        ("require_stable", Boolean),
        ("tags", TaggedFields),
    )


OffsetFetchStruct: TypeAlias = OffsetFetchRequest_v7


class StableOffsetFetchRequest(Request[OffsetFetchStruct]):  # type: ignore[misc]
    API_KEY = 9

    def __init__(self, group_id: str, partitions: list[TopicPartition]):
        by_topic: dict[str, list[int]] = collections.defaultdict(list)
        for tp in partitions:
            by_topic[tp.topic].append(tp.partition)
        self._fields: tuple[Any, ...] = (
            group_id,
            [(t, sorted(ps), {}) for t, ps in by_topic.items()],
            True,
            {},
        )

    def build(self, request_struct_class: type[OffsetFetchStruct]) -> OffsetFetchStruct:
        return request_struct_class(*self._fields)


_COORDINATOR_CODES = {
    errors.CoordinatorNotAvailableError.errno,
    errors.NotCoordinatorError.errno,
    errors.CoordinatorLoadInProgressError.errno,
}


async def fetch_stable_offsets(
    consumer: AIOKafkaConsumer,
    partitions: list[TopicPartition],
    timeout_s: float = 120.0,
    retry_s: float = 0.05,
) -> dict[TopicPartition, int | None]:
    """The group's committed offsets of `partitions`, waiting while a transaction that
    commits offsets for any of them is still open (committed or aborted, never pending).
    None for a partition the group has never committed."""
    coordinator = consumer._coordinator
    client = consumer._client
    group_id = coordinator.group_id
    deadline = time.monotonic() + timeout_s
    while True:
        await coordinator.ensure_coordinator_known()
        node = coordinator.coordinator_id
        # On the coordinator's connection, as the group's own requests go: the default
        # one carries the consumer's fetches, and a long poll there (fetch_max_wait_ms)
        # would hold this request behind it.
        response = await client.send(
            node, StableOffsetFetchRequest(group_id, partitions), group=ConnectionGroup.COORDINATION
        )
        retry = response.error_code in _COORDINATOR_CODES
        if response.error_code and not retry:
            raise errors.for_code(response.error_code)(f"OffsetFetch for {group_id}")
        out: dict[TopicPartition, int | None] = {}
        for topic, parts, _tags in response.topics:
            for partition, offset, _epoch, _meta, code, _ptags in parts:
                if code == _UNSTABLE_OFFSET_COMMIT or code in _COORDINATOR_CODES:
                    retry = True
                elif code:
                    raise errors.for_code(code)(f"OffsetFetch {topic}[{partition}]")
                out[TopicPartition(topic, partition)] = None if offset < 0 else int(offset)
        if not retry:
            return out
        if response.error_code in _COORDINATOR_CODES:
            coordinator.coordinator_dead()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{group_id}: committed offsets still unstable after {timeout_s}s")
        await asyncio.sleep(retry_s)


__all__ = [
    "GroupGeneration",
    "GroupMoved",
    "fetch_stable_offsets",
    "group_generation",
    "install",
    "send_offsets_fenced",
]
