"""The dispatch stage's timer on the engine's due index (no broker, no channels): a ledger
handed over before its time is indexed again at its time, and a due delivery without a
free send slot is kept due instead of dropped from the index."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from handoff_events.stream.engine import TaskStore, _Context
from handoff_notifications.adapters.templates import TemplateRenderer
from handoff_notifications.adapters.webhook import EndpointHealthBook
from handoff_notifications.domain.backoff import RetryPolicy
from handoff_notifications.domain.ledger import (
    Planner,
    ShipmentLedger,
    next_visit,
    record_sent,
    record_update,
)
from handoff_notifications.handlers import Channels, Notifier

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 13:00 in Berlin: outside quiet hours
F = dict[str, Callable[..., Any]]
RETENTION = timedelta(days=30)


def _notifier(planner: Planner, renderer: TemplateRenderer, max_in_flight: int) -> Notifier:
    no_channels = Channels(mailer=None, sms=None, webhooks=None, endpoints={})  # type: ignore[arg-type]
    return Notifier(
        planner=planner,
        renderer=renderer,
        channels=no_channels,
        policy=RetryPolicy(),
        health=EndpointHealthBook(),
        retention=RETENTION,
        max_in_flight=max_in_flight,
    )


def _indexed(store: TaskStore[ShipmentLedger], key: str, ledger: ShipmentLedger) -> None:
    store.put(key, ledger)
    store.keep_record()
    store.apply_batch()


async def _tick(notifier: Notifier, store: TaskStore[ShipmentLedger], now: datetime) -> Any:
    ctx: _Context[ShipmentLedger] = _Context(0, store, now)
    ctx.due_keys = [key for key, _ in store.take_due(now.timestamp())]
    await notifier.tick(ctx)
    store.keep_record()
    store.apply_batch()
    return ctx


async def test_a_ledger_indexed_under_other_rules_is_indexed_again_at_its_time(
    f: F, planner: Planner, renderer: TemplateRenderer
) -> None:
    notifier = _notifier(planner, renderer, max_in_flight=64)
    # A delivered update before the contact; the webhook already went out: only the wait
    # for a contact is left, which runs out after the tenant's staleness limit.
    ledger, _ = record_update(None, "acme", f["stored"](f["update"]("delivered")), T0, planner)
    (webhook,) = ledger.deliveries
    ledger, _ = record_sent(ledger, webhook, T0)
    staleness = planner.rules.for_tenant("acme").staleness
    # Indexed while the limit was an hour shorter (the rules changed since).
    shorter = replace(planner.rules.for_tenant("acme"), staleness=staleness - timedelta(hours=1))
    store: TaskStore[ShipmentLedger] = TaskStore(
        None, lambda lg: next_visit(lg, shorter.staleness, RETENTION)
    )
    _indexed(store, "shp_1", ledger)
    early = T0 + shorter.staleness + timedelta(seconds=1)
    assert store.has_due(early.timestamp())

    store._due_of = notifier.next_visit  # the service restarted under the new rules
    ctx = await _tick(notifier, store, early)

    assert not ctx.emits and ctx.kept == set()
    assert store.get("shp_1") == ledger  # nothing to do yet: the wait is not over
    assert store.due_at["shp_1"] == notifier.next_visit(ledger).timestamp()
    assert store.due_at["shp_1"] > early.timestamp()  # back in the index, at its time


async def test_a_due_delivery_without_a_free_send_slot_stays_due(
    f: F, planner: Planner, renderer: TemplateRenderer
) -> None:
    notifier = _notifier(planner, renderer, max_in_flight=0)
    ledger, _ = record_update(None, "acme", f["stored"](f["update"]("delivered")), T0, planner)
    store: TaskStore[ShipmentLedger] = TaskStore(None, notifier.next_visit)
    _indexed(store, "shp_1", ledger)

    ctx = await _tick(notifier, store, T0 + timedelta(seconds=1))

    assert ctx.kept == {"shp_1"}
    assert store.get("shp_1") == ledger and not ctx.emits
