"""How big each scenario is in `--mode quick` (make bench-quick, < 5 min) and `--mode full`
(make bench, < 30 min). Quick mode proves the harness end to end; its numbers are noisy."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    perf_records: int
    """ProducerPerformance / ConsumerPerformance records."""
    e2e_records: int
    """EndToEndLatency round trips."""
    fold_shipments: int
    """Shipments in the fold's throughput burst (8 carrier scans each)."""
    fixed_load_s: float
    """Seconds of offered load at 2,000 events/s (fold, peer) or 200 orders/s (pipeline)."""
    max_load_s: float
    """Seconds of offered load at the measured maximum (latency at saturation)."""
    restore_shipments: int
    scaling_shipments: int
    webhook_s: int
    pipeline_backlog: int
    """Orders in the pipeline's throughput burst."""
    rating_shipments: int
    profile_s: int
    drain_s: float
    """Longest wait for a burst's last result (the pipeline's allocations)."""


QUICK = Sizes(
    perf_records=200_000,
    e2e_records=2_000,
    fold_shipments=2_500,
    fixed_load_s=8,
    max_load_s=5,
    restore_shipments=100_000,
    scaling_shipments=2_000,
    webhook_s=8,
    pipeline_backlog=600,
    rating_shipments=1_000,
    profile_s=6,
    drain_s=60,
)
FULL = Sizes(
    perf_records=2_000_000,
    e2e_records=10_000,
    fold_shipments=30_000,
    fixed_load_s=30,
    max_load_s=15,
    restore_shipments=1_000_000,
    scaling_shipments=15_000,
    webhook_s=30,
    pipeline_backlog=5_000,
    rating_shipments=5_000,
    profile_s=15,
    drain_s=300,
)
