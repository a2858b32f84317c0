"""The pipeline benchmark's per-stage commit rows read the services' real exposition."""

from __future__ import annotations

from handoff_events.runtime import metrics
from prometheus_client import generate_latest

from bench import stage_metrics


def test_a_stage_commit_row_is_the_phase_s_difference() -> None:
    labels = ("bench_svc", "orders")
    before = stage_metrics.parse(generate_latest().decode()).get("bench_svc/orders")
    for seconds in (0.040, 0.060):
        metrics.TRANSACTIONS.labels(*labels, "committed").inc()
        metrics.COMMIT_SECONDS.labels(*labels).observe(seconds)
        metrics.BATCH_SECONDS.labels(*labels).observe(seconds + 0.010)
    metrics.TRANSACTIONS.labels(*labels, "aborted").inc()  # not a commit
    after = stage_metrics.parse(generate_latest().decode())
    assert after["bench_svc/orders"].committed == (before.committed if before else 0) + 2

    rows = stage_metrics.rows("order pipeline", "@ 200/s", {}, after, wall_s=2.0)
    (row,) = [r for r in rows if r.metric.endswith("bench_svc/orders")]
    assert row.value is not None and abs(row.value - 50.0) < 1e-6  # (40 + 60) / 2 ms
    assert "1.0 transactions/s" in row.note and "mean 60 ms" in row.note
    # Nothing committed between two snapshots: no row.
    assert not [
        r for r in stage_metrics.rows("p", "x", after, after, 1.0) if "bench_svc" in r.metric
    ]
