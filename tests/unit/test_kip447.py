"""The pieces of aiokafka that group-metadata fencing (docs/decisions/0002) builds on.

`handoff_events.stream.kip447` replaces aiokafka's TxnOffsetCommit handler and reads
the consumer's coordinator; an aiokafka upgrade that moves either fails here."""

from __future__ import annotations

import inspect
from io import BytesIO
from typing import Any

import aiokafka.producer.sender as aiokafka_sender
import pytest
from aiokafka.consumer.group_coordinator import GroupCoordinator
from aiokafka.producer.transaction_manager import TransactionManager, TransactionState
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from handoff_events.stream import kip447


def _txn(generation: kip447.GroupGeneration | None) -> Any:
    txn = TransactionManager("handoff.tracking.fold.pod-0", 60_000)
    txn.set_pid_and_epoch(42, 3)
    txn.begin_transaction()
    txn.maybe_add_partition_to_txn(TopicPartition("out", 0))
    txn.partition_added(TopicPartition("out", 0))
    if generation is not None:
        txn.handoff_generation = generation
    return txn


class _Sender:
    _retry_backoff = 0.1

    def __init__(self, txn: Any) -> None:
        self._txn_manager = txn


def _handler(generation: kip447.GroupGeneration | None) -> Any:
    kip447.install()
    offsets = {TopicPartition("t", 1): OffsetAndMetadata(10, "")}
    return aiokafka_sender.TxnOffsetCommitHandler(_Sender(_txn(generation)), offsets, "g")


def test_install_replaces_the_handler_the_sender_looks_up_at_call_time() -> None:
    kip447.install()
    assert aiokafka_sender.TxnOffsetCommitHandler.__name__ == "_FencedTxnOffsetCommitHandler"
    source = inspect.getsource(aiokafka_sender.Sender._do_txn_offset_commit)
    assert "TxnOffsetCommitHandler(" in source


@pytest.mark.asyncio
async def test_with_a_generation_the_commit_is_v3_and_names_member_and_generation() -> None:
    generation = kip447.GroupGeneration(7, "member-a")
    struct = _handler(generation).create_request().prepare({28: (0, 5)})
    assert struct.API_VERSION == 3
    decoded = type(struct).SCHEMA.decode(BytesIO(struct.encode()))
    assert decoded[:7] == ("handoff.tracking.fold.pod-0", "g", 42, 3, 7, "member-a", None)
    assert decoded[7] == [("t", [(1, 10, -1, "", {})], {})]


@pytest.mark.asyncio
async def test_without_a_generation_aiokafkas_own_request_is_sent() -> None:
    struct = _handler(None).create_request().prepare({28: (0, 5)})
    assert struct.API_VERSION == 0


@pytest.mark.asyncio
async def test_a_refusal_by_the_group_leaves_an_abortable_transaction_that_still_aborts() -> None:
    handler = _handler(kip447.GroupGeneration(7, "member-a"))
    txn = handler._sender._txn_manager
    pending = txn.add_offsets_to_txn(handler._offsets, "g")
    response = kip447.TxnOffsetCommitResponse_v3(0, [("t", [(1, 22, {})], {})], {})
    assert handler.handle_response(response) is None
    assert isinstance(pending.exception(), kip447.GroupMoved)
    assert "IllegalGeneration" in str(pending.exception())
    assert txn.state == TransactionState.ABORTABLE_ERROR
    # The partitions stay in the transaction, so abort sends EndTxn (aiokafka's own
    # error_transaction forgets them and the abort silently sends nothing).
    assert not txn.is_empty_transaction()


def test_no_generation_while_rejoining() -> None:
    assert not kip447.GroupGeneration(-1, "").valid
    assert not kip447.GroupGeneration(3, "").valid
    assert kip447.GroupGeneration(0, "m").valid


def test_the_coordinator_still_keeps_generation_and_member_id() -> None:
    source = inspect.getsource(GroupCoordinator.__init__)
    assert "self.generation" in source and "self.member_id" in source
    assert hasattr(GroupCoordinator, "ensure_coordinator_known")
    assert hasattr(GroupCoordinator, "coordinator_dead")


def test_stable_offset_fetch_is_v7_with_require_stable() -> None:
    request = kip447.StableOffsetFetchRequest("g", [TopicPartition("t", 2), TopicPartition("t", 0)])
    struct = request.prepare({9: (1, 10)})
    assert struct.API_VERSION == 7
    decoded = type(struct).SCHEMA.decode(BytesIO(struct.encode()))
    assert decoded == ("g", [("t", [0, 2], {})], True, {})
