"""What each stream stage's transactions cost during one phase of a benchmark, read from
the services' own Prometheus metrics: `handoff_transactions_total{outcome="committed"}`,
`handoff_commit_seconds` (begin_transaction to the commit's answer) and
`handoff_batch_seconds` (handling plus commit). A snapshot before the phase and one after
give each stage's transactions per second and mean commit time over it.

The pipeline's latency is made of these commits: a record waits for the batch in flight
to commit, then for its own (docs/benchmarks.md, ninth round)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.common import Row


@dataclass(frozen=True)
class StageTotals:
    """One stage's counters so far."""

    committed: float = 0.0
    commit_s: float = 0.0
    commits: float = 0.0
    batch_s: float = 0.0
    batches: float = 0.0


_FIELDS = {
    "handoff_commit_seconds_sum": "commit_s",
    "handoff_commit_seconds_count": "commits",
    "handoff_batch_seconds_sum": "batch_s",
    "handoff_batch_seconds_count": "batches",
}


def parse(text: str) -> dict[str, StageTotals]:
    """`service/stage` -> its totals, from one /metrics exposition."""
    values: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if "stage" not in labels or "service" not in labels:
                continue
            field = _FIELDS.get(sample.name)
            if sample.name == "handoff_transactions_total" and labels.get("outcome") == "committed":
                field = "committed"
            if field is not None:
                stage = values.setdefault(f"{labels['service']}/{labels['stage']}", {})
                stage[field] = stage.get(field, 0.0) + sample.value
    return {stage: StageTotals(**fields) for stage, fields in values.items()}


async def scrape(ports: Mapping[str, int]) -> dict[str, StageTotals]:
    """Every stage of the services listening on `ports` (their /metrics)."""
    out: dict[str, StageTotals] = {}
    async with httpx.AsyncClient(timeout=5) as client:
        for port in ports.values():
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
            answer.raise_for_status()
            out.update(parse(answer.text))
    return out


def rows(
    scenario: str,
    phase: str,
    before: Mapping[str, StageTotals],
    after: Mapping[str, StageTotals],
    wall_s: float,
) -> list[Row]:
    """A row per stage that committed during the phase: mean commit time, with its
    transactions per second and mean batch time in the note."""
    out = []
    for stage in sorted(after):
        now, then = after[stage], before.get(stage, StageTotals())
        commits = now.commits - then.commits
        committed = now.committed - then.committed
        if commits <= 0 or committed <= 0:
            continue
        commit_ms = 1000 * (now.commit_s - then.commit_s) / commits
        batches = now.batches - then.batches
        batch_ms = 1000 * (now.batch_s - then.batch_s) / batches if batches > 0 else 0.0
        out.append(
            Row(
                scenario,
                f"commit mean {phase}: {stage}",
                commit_ms,
                "ms",
                note=f"{committed / wall_s:.1f} transactions/s; batch (handling + commit) "
                f"mean {batch_ms:.0f} ms; over {wall_s:.0f} s",
            )
        )
    return out
