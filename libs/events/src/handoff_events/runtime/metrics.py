"""Prometheus metrics shared by every service (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

RECORDS = Counter(
    "handoff_records_processed_total",
    "Input records handled by a stream stage",
    ["service", "stage", "topic"],
)
DLQ = Counter(
    "handoff_dlq_records_total",
    "Records routed to a dead-letter topic",
    ["service", "stage", "topic", "reason"],
)
EMITTED = Counter(
    "handoff_records_emitted_total", "Output records committed", ["service", "stage", "topic"]
)
TRANSACTIONS = Counter(
    "handoff_transactions_total", "Kafka transactions by outcome", ["service", "stage", "outcome"]
)
BATCH_SECONDS = Histogram(
    "handoff_batch_seconds",
    "Time to handle and commit one batch (all tasks of the instance with work)",
    ["service", "stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
COMMIT_SECONDS = Histogram(
    "handoff_commit_seconds",
    "Time from a batch's begin_transaction to its commit returning (the broker's part)",
    ["service", "stage"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAG = Gauge(
    "handoff_consumer_lag",
    "Records behind the partition end",
    ["service", "stage", "topic", "partition"],
)
RESTORE_SECONDS = Histogram(
    "handoff_restore_seconds",
    "Time to restore one task's store from its changelog",
    ["service", "stage"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
RESTORED_RECORDS = Counter(
    "handoff_restored_records_total", "Changelog records read on restore", ["service", "stage"]
)
STORE_KEYS = Gauge("handoff_store_keys", "Keys held in a stage's stores", ["service", "stage"])
STORE_UNPACKED = Gauge(
    "handoff_store_unpacked_keys",
    "Keys of a stage's stores held decoded or as their bytes (bounded by store_unpacked_max)",
    ["service", "stage"],
)
STORE_PACKED = Counter(
    "handoff_store_packed_total",
    "Least recently used store values packed back into compressed record batches",
    ["service", "stage"],
)
ASSIGNED = Gauge("handoff_assigned_partitions", "Partitions owned", ["service", "stage"])
READY = Gauge("handoff_ready", "1 when every assigned task is restored", ["service"])
HTTP_REQUESTS = Counter(
    "handoff_http_requests_total", "HTTP requests", ["service", "route", "status"]
)
