"""Notifications' outcomes (internal topic `handoff.notifications.outcomes.v1`)."""

from __future__ import annotations

from handoff_events.contracts.base import Event
from handoff_events.values import AwareDatetime, Channel


class NotificationSent(Event, frozen=True, kw_only=True):
    ce_type = "handoff.notification.sent.v1"

    notification_id: str
    """Deterministic per (shipment, milestone, channel, recipient): Message-ID / idempotency key."""
    shipment_id: str
    milestone: str
    channel: Channel
    recipient_ref: str
    """A hash of the recipient, never the address itself (PII stays out of topics)."""
    sent_at: AwareDatetime
    attempt: int = 1


class NotificationFailed(Event, frozen=True, kw_only=True):
    ce_type = "handoff.notification.failed.v1"

    notification_id: str
    shipment_id: str
    milestone: str
    channel: Channel
    recipient_ref: str
    failed_at: AwareDatetime
    attempt: int
    error: str
    next_attempt_at: AwareDatetime | None = None


class NotificationDeadLettered(Event, frozen=True, kw_only=True):
    ce_type = "handoff.notification.dead_lettered.v1"

    notification_id: str
    shipment_id: str
    milestone: str
    channel: Channel
    recipient_ref: str
    dead_lettered_at: AwareDatetime
    attempts: int
    delivery_log: list[str] = []
