"""Prometheus metrics of the notifications service (beside the engine's shared ones)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

ATTEMPTS = Counter(
    "handoff_notification_attempts_total",
    "Send attempts by channel and result (sent, failed, rejected)",
    ["tenant", "channel", "result"],
)
DEAD_LETTERED = Counter(
    "handoff_notifications_dead_lettered_total",
    "Notifications given up on after the retry horizon or a permanent failure",
    ["tenant", "channel"],
)
SKIPPED = Counter(
    "handoff_notifications_skipped_total",
    "Notifications deliberately not planned (stale, opted out, no address, duplicate …)",
    ["channel", "reason"],
)
IN_FLIGHT = Gauge("handoff_notifications_in_flight", "Sends in progress")
ENDPOINT_PAUSED = Gauge(
    "handoff_webhook_endpoint_paused",
    "1 while a marketplace endpoint is paused after consecutive failures",
    ["tenant"],
)
ENDPOINT_PAUSES = Counter(
    "handoff_webhook_endpoint_pauses_total", "Times a marketplace endpoint was paused", ["tenant"]
)
