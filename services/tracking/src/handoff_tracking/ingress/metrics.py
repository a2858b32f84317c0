"""Prometheus metrics of the carrier ingress (webhook, join, normalisation)."""

from __future__ import annotations

from functools import cache
from typing import Any

from prometheus_client import Counter

UNKNOWN_CODES = Counter(
    "handoff_tracking_unknown_codes_total",
    "Carrier scans whose code is not in the carrier's code table (flagged `unknown`, not dropped)",
    ["carrier"],
)
MISROUTED = Counter(
    "handoff_tracking_misrouted_records_total",
    "Records found in a partition their key does not hash to (murmur2), re-published correctly",
    ["topic"],
)
HELD = Counter(
    "handoff_tracking_join_held_total",
    "Carrier scans held because their tracking number was not yet assigned to a shipment",
    ["carrier"],
)
WEBHOOK_EVENTS = Counter(
    "handoff_tracking_webhook_events_total",
    "Carrier scans accepted by the webhook (acknowledged by Kafka)",
    ["carrier"],
)
WEBHOOK_REJECTED = Counter(
    "handoff_tracking_webhook_rejected_total",
    "Webhook requests refused, by reason",
    ["carrier", "reason"],
)


# Per-record and per-request counters: the labelled children are looked up once per label
# value (carriers are few) instead of through `labels()` on every scan.


@cache
def held(carrier: str) -> Any:
    return HELD.labels(carrier)


@cache
def unknown_codes(carrier: str) -> Any:
    return UNKNOWN_CODES.labels(carrier)


@cache
def webhook_events(carrier: str) -> Any:
    """Only for configured carriers (the webhook answers 404 before counting anything else)."""
    return WEBHOOK_EVENTS.labels(carrier)
