"""Tracking's Prometheus metrics. Labels are bounded: milestone, exception kind, carrier, tenant.

Counters are incremented when a batch is handled, so a batch retried after an
aborted transaction can count twice: they are rates for dashboards. The KPI
gauges are recomputed from the KPI stage's committed store (exact for the
partitions this instance owns; sum them across instances).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge

UPDATES = Counter(
    "handoff_tracking_updates_total", "Shipment updates emitted, by milestone", ["milestone"]
)
EXCEPTIONS = Counter(
    "handoff_tracking_exceptions_total",
    "Shipment exceptions detected",
    ["kind", "carrier", "tenant"],
)
UNKNOWN_OBSERVATIONS = Counter(
    "handoff_tracking_unknown_observations_total",
    "Carrier scans with a code the carrier's table does not know (kept, flagged)",
    ["carrier"],
)
KPI_LABELS = ["carrier", "tenant"]
DELIVERED = Gauge(
    "handoff_tracking_delivered_shipments", "Delivered shipments in the KPI store", KPI_LABELS
)
DELIVERED_ON_TIME = Gauge(
    "handoff_tracking_delivered_on_time_shipments",
    "Delivered no later than promised",
    KPI_LABELS,
)
PROMISED = Gauge(
    "handoff_tracking_promised_shipments", "Delivered shipments that had a promise", KPI_LABELS
)
FIRST_ATTEMPT = Gauge(
    "handoff_tracking_first_attempt_deliveries", "Delivered at the first attempt", KPI_LABELS
)
WITH_EXCEPTION = Gauge(
    "handoff_tracking_shipments_with_exception",
    "Delivered shipments that had an exception",
    KPI_LABELS,
)
ON_TIME_RATE = Gauge("handoff_tracking_on_time_rate", "On-time rate vs promise", KPI_LABELS)
FIRST_ATTEMPT_RATE = Gauge(
    "handoff_tracking_first_attempt_success_rate", "First-attempt success rate", KPI_LABELS
)
EXCEPTION_RATE = Gauge("handoff_tracking_exception_rate", "Exception rate", KPI_LABELS)
TRANSIT_AVG = Gauge("handoff_tracking_transit_hours_avg", "Average transit time (h)", KPI_LABELS)
TRANSIT_P90 = Gauge("handoff_tracking_transit_hours_p90", "p90 transit time (h)", KPI_LABELS)
COST_PER_DELIVERY = Gauge(
    "handoff_tracking_cost_per_delivery_minor",
    "Average carrier cost per delivery, minor units of the bucket currency",
    KPI_LABELS,
)
READ_MODEL_SHIPMENTS = Gauge(
    "handoff_tracking_read_model_shipments", "Shipments held by the query read model"
)
