"""Scenario 7, scaling: the tracking fold with 1, 2 and 4 instances (separate processes,
one consumer group) on the 12-partition observations topic.

For each instance count: fresh topics, start the instances, wait until the group is
settled (every instance ready, the 12 partitions spread over all of them), warm up,
then one burst (scenario 2's method); events/s over the burst and the CPU the
instances used meanwhile (cores busy = CPU seconds / wall seconds).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.common import OBSERVATIONS, PARTITIONS, Row, provision_catalogue, say, stop_workers
from bench.scenarios.fold import burst, fold_worker, wait_ready

if TYPE_CHECKING:
    from bench.run import Bench

INSTANCES = (1, 2, 4)


async def run(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    base: float | None = None
    for n in INSTANCES:
        prefix = f"scale{n}-{bench.stamp}."
        await provision_catalogue(bench.bootstrap, prefix)
        workers = [fold_worker(bench, prefix, f"scale{n}-{i}") for i in range(n)]
        bench.workers.extend(workers)
        try:
            await wait_ready(workers, 240, partitions=PARTITIONS)
            say(f"scaling: {n} instance(s) settled; burst")
            result = await burst(
                bench, workers, prefix + OBSERVATIONS, bench.sizes.scaling_shipments, f"s{n}"
            )
        finally:
            stop_workers(workers)
        eps = result["events_per_s"]
        base = base or eps
        bench.results[f"scaling_{n}"] = result
        rows.append(Row("scaling", f"fold throughput, {n} instance(s)", eps, "events/s",
                        note=f"{eps / base:.2f}x of 1 instance; {result['cpu_cores']} cores busy; "
                             f"{result['events_per_cpu_s'] or 0:,} events per CPU-second; "
                             f"{result['events']:,} events"))  # fmt: skip
    return rows
