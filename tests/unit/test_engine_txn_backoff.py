"""The engine shortens aiokafka's fixed 20 ms back-off after CONCURRENT_TRANSACTIONS
(docs/decisions/0002, "Transaction round trips"). It patches a private module constant,
so these tests pin the shape of what it patches: an aiokafka upgrade that renames or
stops using the constant fails here instead of silently bringing the 20 ms back."""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import aiokafka.producer.sender as aiokafka_sender
import pytest
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.engine import shorten_txn_backoff


@pytest.fixture
def restore_constant() -> Iterator[None]:
    before = aiokafka_sender.BACKOFF_OVERRIDE
    yield
    aiokafka_sender.BACKOFF_OVERRIDE = before


def test_aiokafka_still_backs_off_by_the_constant_on_concurrent_transactions() -> None:
    handler = inspect.getsource(aiokafka_sender.AddPartitionsToTxnHandler.handle_response)
    branch = handler.split("ConcurrentTransactions", 1)[1].split("elif", 1)[0]
    assert "BACKOFF_OVERRIDE" in branch


@pytest.mark.usefixtures("restore_constant")
def test_the_back_off_is_set_in_seconds_from_milliseconds() -> None:
    shorten_txn_backoff(2.0)
    assert aiokafka_sender.BACKOFF_OVERRIDE == pytest.approx(0.002)
    shorten_txn_backoff(20.0)
    assert aiokafka_sender.BACKOFF_OVERRIDE == pytest.approx(0.020)


def test_the_default_is_well_below_aiokafkas_20_ms() -> None:
    assert ServiceSettings().txn_retry_backoff_ms < 20.0


@pytest.mark.usefixtures("restore_constant")
def test_a_missing_constant_is_a_loud_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(aiokafka_sender, "BACKOFF_OVERRIDE")
    with pytest.raises(RuntimeError, match="BACKOFF_OVERRIDE"):
        shorten_txn_backoff(2.0)
