"""Planning and recording in the ledger: exactly-once, waiting for contacts, quiet hours,
staleness, retries and dead letters (pure functions, clock as a parameter)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from handoff_events.contracts import ExceptionInfo, NotificationDeadLettered, NotificationFailed
from handoff_notifications.domain.backoff import RetryPolicy
from handoff_notifications.domain.identity import notification_id
from handoff_notifications.domain.ledger import (
    Planner,
    ShipmentLedger,
    due,
    expire_waiting,
    forgettable,
    give_up_if_expired,
    next_visit,
    record_contact,
    record_failure,
    record_sent,
    record_update,
)

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # 13:00 Berlin
NIGHT = datetime(2026, 11, 20, 22, 0, tzinfo=UTC)  # 23:00 Berlin
F = dict[str, Callable[..., Any]]


def _with_contact(f: F, planner: Planner, now: datetime = T0, **kw: Any) -> ShipmentLedger:
    ledger, _ = record_contact(None, "acme", f["requested"](**kw), now, planner)
    return ledger


def test_out_for_delivery_plans_email_sms_and_webhook(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner)
    update = f["update"]("status_changed", status="out_for_delivery")
    ledger, skipped = record_update(ledger, "acme", f["stored"](update), T0, planner)
    assert not skipped
    channels = sorted(d.channel for d in ledger.deliveries.values())
    assert channels == ["email", "sms", "webhook"]
    assert all(d.due_at == T0 for d in ledger.deliveries.values())
    email = next(d for d in ledger.deliveries.values() if d.channel == "email")
    assert email.recipient == "ada@example.com"
    assert email.locale == "de"
    assert email.notification_id == notification_id(
        "shp_1", "out_for_delivery", "email", "ada@example.com"
    )
    sms = next(d for d in ledger.deliveries.values() if d.channel == "sms")
    assert sms.recipient == "+49301234567"


def test_a_replayed_update_plans_nothing_again(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner)
    update = f["stored"](f["update"]("delivered"))
    ledger, _ = record_update(ledger, "acme", update, T0, planner)
    sent_id = next(iter(ledger.deliveries))
    ledger, _ = record_sent(ledger, sent_id, T0)
    again, skipped = record_update(ledger, "acme", update, T0 + timedelta(minutes=1), planner)
    assert again.deliveries == ledger.deliveries
    assert [s.reason for s in skipped] == ["duplicate"]


def test_update_before_contact_waits_then_is_planned(f: F, planner: Planner) -> None:
    update = f["stored"](f["update"]("status_changed", status="out_for_delivery"))
    ledger, _ = record_update(None, "acme", update, T0, planner)
    assert [d.channel for d in ledger.deliveries.values()] == ["webhook"]
    assert list(ledger.awaiting_contact) == ["out_for_delivery"]
    ledger, _ = record_contact(ledger, "acme", f["requested"](), T0 + timedelta(seconds=1), planner)
    assert sorted(d.channel for d in ledger.deliveries.values()) == ["email", "sms", "webhook"]
    assert not ledger.awaiting_contact


def test_waiting_for_a_contact_gives_up_after_the_staleness_limit(f: F, planner: Planner) -> None:
    update = f["stored"](f["update"]("delivered"))
    ledger, _ = record_update(None, "acme", update, T0, planner)
    rules = planner.rules.for_tenant("acme")
    same, expired = expire_waiting(ledger, T0 + timedelta(hours=1), rules)
    assert not expired and same is ledger
    later, expired = expire_waiting(ledger, T0 + timedelta(hours=7), rules)
    assert expired == ["delivered"] and not later.awaiting_contact


def test_quiet_hours_defer_non_urgent_but_not_urgent(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner, NIGHT)
    picked = f["stored"](f["update"]("status_changed", status="picked_up", occurred_at=NIGHT))
    ofd = f["stored"](f["update"]("status_changed", status="out_for_delivery", occurred_at=NIGHT))
    ledger, _ = record_update(ledger, "acme", picked, NIGHT, planner)
    email = next(d for d in ledger.deliveries.values() if d.channel == "email")
    assert email.due_at == datetime(2026, 11, 21, 7, 0, tzinfo=UTC)  # 08:00 Berlin
    hook = next(d for d in ledger.deliveries.values() if d.channel == "webhook")
    assert hook.due_at == NIGHT  # marketplaces have no quiet hours
    assert [d.channel for d in due(ledger, NIGHT)] == ["webhook"]
    ledger, _ = record_update(ledger, "acme", ofd, NIGHT, planner)
    urgent = [d for d in ledger.deliveries.values() if d.occurrence == "out_for_delivery"]
    assert all(d.due_at == NIGHT for d in urgent)


def test_a_newer_milestone_supersedes_a_message_still_waiting_for_the_morning(
    f: F, planner: Planner
) -> None:
    ledger = _with_contact(f, planner, NIGHT)
    picked = f["stored"](f["update"]("status_changed", status="picked_up", occurred_at=NIGHT))
    delivered = f["stored"](f["update"]("delivered", occurred_at=NIGHT + timedelta(minutes=5)))
    ledger, _ = record_update(ledger, "acme", picked, NIGHT, planner)
    ledger, _ = record_update(ledger, "acme", delivered, NIGHT + timedelta(minutes=5), planner)
    emails = {d.occurrence: d.status for d in ledger.deliveries.values() if d.channel == "email"}
    assert emails == {"picked_up": "superseded", "delivered": "pending"}


def test_stale_milestones_are_not_told_to_customers(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner)
    old = f["stored"](f["update"]("delivered", occurred_at=T0 - timedelta(hours=7)))
    ledger, skipped = record_update(ledger, "acme", old, T0, planner)
    assert [d.channel for d in ledger.deliveries.values()] == ["webhook"]
    assert {s.reason for s in skipped} == {"stale"}


def test_opt_out_and_channel_choice(f: F, planner: Planner) -> None:
    update = f["stored"](f["update"]("status_changed", status="out_for_delivery"))
    out = _with_contact(f, planner, opted_out=True)
    out, skipped = record_update(out, "acme", update, T0, planner)
    assert [d.channel for d in out.deliveries.values()] == ["webhook"]
    assert {s.reason for s in skipped} == {"opted_out"}
    sms_only = _with_contact(f, planner, channels=["sms"])
    sms_only, _ = record_update(sms_only, "acme", update, T0, planner)
    assert sorted(d.channel for d in sms_only.deliveries.values()) == ["sms", "webhook"]


def test_missing_address_skips_the_channel(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner, phone=None)
    update = f["stored"](f["update"]("status_changed", status="out_for_delivery"))
    ledger, skipped = record_update(ledger, "acme", update, T0, planner)
    assert sorted(d.channel for d in ledger.deliveries.values()) == ["email", "webhook"]
    assert [(s.channel, s.reason) for s in skipped] == [("sms", "no_address")]


def test_exceptions_of_different_kinds_are_different_notifications(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner)
    for kind in ("late", "stuck"):
        info = ExceptionInfo(kind=kind, detected_at=T0)
        update = f["stored"](f["update"]("exception", status="in_transit", exception=info))
        ledger, _ = record_update(ledger, "acme", update, T0, planner)
    emails = sorted(d.occurrence for d in ledger.deliveries.values() if d.channel == "email")
    assert emails == ["exception.late", "exception.stuck"]


def test_failures_retry_then_dead_letter_with_the_full_log(f: F, planner: Planner) -> None:
    policy = RetryPolicy(base_s=0.2, cap_s=1.0, horizon_s=3.0)
    ledger, _ = record_update(None, "acme", f["stored"](f["update"]("delivered")), T0, planner)
    nid = next(iter(ledger.deliveries))
    now = T0
    events: list[Any] = []
    while True:
        ledger, out = record_failure(ledger, nid, now, "HTTP 503", permanent=False, policy=policy)
        events += out
        if isinstance(out[-1], NotificationDeadLettered):
            break
        retry_at = out[0].next_attempt_at
        assert retry_at is not None and retry_at > now
        assert due(ledger, now) == [] and due(ledger, retry_at) != []
        now = retry_at
    dead = events[-1]
    failed = [e for e in events if isinstance(e, NotificationFailed)]
    assert dead.attempts == len(failed) >= 4
    assert len(dead.delivery_log) == dead.attempts
    assert all("HTTP 503" in line for line in dead.delivery_log)
    assert ledger.deliveries[nid].status == "dead_lettered"
    assert failed[-1].next_attempt_at is None
    assert now <= T0 + timedelta(seconds=3)


def test_permanent_failure_dead_letters_at_once(f: F, planner: Planner) -> None:
    ledger, _ = record_update(None, "acme", f["stored"](f["update"]("delivered")), T0, planner)
    nid = next(iter(ledger.deliveries))
    ledger, out = record_failure(ledger, nid, T0, "HTTP 422", permanent=True, policy=RetryPolicy())
    assert [type(e).__name__ for e in out] == ["NotificationFailed", "NotificationDeadLettered"]


def test_held_back_delivery_still_expires(f: F, planner: Planner) -> None:
    policy = RetryPolicy(base_s=1, cap_s=1, horizon_s=60)
    ledger, _ = record_update(None, "acme", f["stored"](f["update"]("delivered")), T0, planner)
    nid = next(iter(ledger.deliveries))
    same, dead = give_up_if_expired(ledger, nid, T0 + timedelta(seconds=59), policy, "paused")
    assert dead is None and same is ledger
    gone, dead = give_up_if_expired(ledger, nid, T0 + timedelta(seconds=61), policy, "paused")
    assert dead is not None and "paused" in dead.delivery_log[-1]
    assert gone.deliveries[nid].status == "dead_lettered"


def test_sent_ledger_is_forgotten_only_after_retention(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner)
    ledger, _ = record_update(ledger, "acme", f["stored"](f["update"]("delivered")), T0, planner)
    assert not forgettable(ledger, T0 + timedelta(days=60), timedelta(days=30))  # still pending
    for nid in list(ledger.deliveries):
        ledger, _ = record_sent(ledger, nid, T0)
    assert not forgettable(ledger, T0 + timedelta(days=29), timedelta(days=30))
    assert forgettable(ledger, T0 + timedelta(days=31), timedelta(days=30))


def test_outcome_events_and_their_encoding_carry_no_address(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner)
    update = f["stored"](f["update"]("status_changed", status="out_for_delivery"))
    ledger, _ = record_update(ledger, "acme", update, T0, planner)
    for nid in list(ledger.deliveries):
        ledger, sent = record_sent(ledger, nid, T0)
        raw = msgspec.json.encode(sent)
        assert b"ada@example.com" not in raw and b"301234567" not in raw
        assert sent.recipient_ref.startswith("rcp_")


def test_ledger_round_trips_through_the_changelog_codec(f: F, planner: Planner) -> None:
    ledger = _with_contact(f, planner)
    ledger, _ = record_update(ledger, "acme", f["stored"](f["update"]("delivered")), T0, planner)
    raw = msgspec.msgpack.encode(ledger)
    assert msgspec.msgpack.decode(raw, type=ShipmentLedger) == ledger


def test_the_timer_visits_a_ledger_exactly_when_it_has_something_to_do(
    f: F, planner: Planner
) -> None:
    """`next_visit` (the due index's time) is the first moment at which `due`,
    `expire_waiting` or `forgettable` acts: never later (a send or expiry would wait for
    a write that may not come), never earlier (the timer would visit for nothing)."""
    rules = planner.rules.for_tenant("acme")
    retention = timedelta(days=30)
    policy = RetryPolicy(base_s=0.2, cap_s=1.0, horizon_s=60.0)

    def acts(ledger: ShipmentLedger, now: datetime) -> bool:
        return (
            bool(due(ledger, now))
            or bool(expire_waiting(ledger, now, rules)[1])
            or forgettable(ledger, now, retention)
        )

    def visited_at(ledger: ShipmentLedger) -> datetime:
        at = next_visit(ledger, rules.staleness, retention)
        assert acts(ledger, at) and not acts(ledger, at - timedelta(microseconds=1))
        return at

    # A delivered update before the contact: the webhook is due now, customers wait.
    ledger, _ = record_update(None, "acme", f["stored"](f["update"]("delivered")), T0, planner)
    assert visited_at(ledger) == T0
    (webhook,) = ledger.deliveries
    ledger, out = record_failure(ledger, webhook, T0, "HTTP 503", permanent=False, policy=policy)
    assert visited_at(ledger) == out[0].next_attempt_at  # the retry
    ledger, _ = record_sent(ledger, webhook, T0 + timedelta(seconds=1))
    # Only the wait for a contact is left: it runs out after the staleness limit.
    assert visited_at(ledger) > T0 + rules.staleness
    ledger, _ = record_contact(ledger, "acme", f["requested"](), T0 + timedelta(minutes=5), planner)
    assert not ledger.awaiting_contact and len(ledger.deliveries) == 3
    visited_at(ledger)  # the customer messages (quiet hours may defer them)
    for nid, delivery in ledger.deliveries.items():
        if delivery.status == "pending":
            ledger, _ = record_sent(ledger, nid, delivery.due_at)
    # Nothing pending: the next visit forgets it, once retention has passed.
    assert visited_at(ledger) > ledger.last_activity_at + retention
