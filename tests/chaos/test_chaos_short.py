"""The short chaos set (part of `make test`): one named test per fault, so a regression names
the fault. All share one pipeline (two processes of each of order_intake, rate_shopping,
carrier_allocation and tracking, plus the simulated carriers) on the 3-broker cluster
(RF=3, min.insync.replicas=2); each drives its own seeded orders and carrier scans and
proves against that oracle: nothing lost, every state equal to a fault-free fold and
to the oracle's journey, no milestone or update id published twice, every DLQ record
with a reason. The long form is `make chaos` (chaos/run.py --long).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from chaos.faults import SHORT, Scenario, run_scenario
from chaos.harness import Pipeline, Verdict, delete_topics, table

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.cluster, pytest.mark.slow]
VERDICTS: list[Verdict] = []


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pipeline(
    kafka_cluster: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Pipeline]:
    running = Pipeline(
        kafka_cluster,
        f"chaos{uuid.uuid4().hex[:6]}.",
        Path(tmp_path_factory.mktemp("chaos")),
    )
    await running.start(ready_within=900)
    try:
        yield running
    finally:
        await running.stop()
        await delete_topics(kafka_cluster, running.prefix)
        if VERDICTS:
            print("\n" + table(VERDICTS))


def _scenario(name: str) -> Scenario:
    return next(s for s in SHORT if s.name == name)


async def _prove(pipeline: Pipeline, name: str) -> None:
    verdict = await run_scenario(pipeline, _scenario(name))
    VERDICTS.append(verdict)
    print(f"\n{verdict.explain()}", flush=True)  # shown with -s, and in the report on failure
    if verdict.recovery_s is None:
        await pipeline.restart_all()  # the next fault starts from a working pipeline
    assert verdict.ok, verdict.explain()
    assert verdict.records_in > 0


@pytest.mark.asyncio(loop_scope="module")
async def test_chaos_sigkill_of_service_instances_mid_batch_and_mid_rebalance(
    pipeline: Pipeline,
) -> None:
    await _prove(pipeline, "sigkill service instances")


@pytest.mark.asyncio(loop_scope="module")
async def test_chaos_sigkill_of_the_partition_leader_broker(pipeline: Pipeline) -> None:
    await _prove(pipeline, "sigkill partition leader broker")


@pytest.mark.asyncio(loop_scope="module")
async def test_chaos_sigstop_sigcont_of_a_broker(pipeline: Pipeline) -> None:
    await _prove(pipeline, "sigstop broker 15 s")


@pytest.mark.asyncio(loop_scope="module")
async def test_chaos_rolling_restart_of_all_brokers(pipeline: Pipeline) -> None:
    await _prove(pipeline, "rolling broker restart")


@pytest.mark.asyncio(loop_scope="module")
async def test_chaos_scaling_every_service_1_3_1_under_load(pipeline: Pipeline) -> None:
    await _prove(pipeline, "scale 1 -> 3 -> 1")


@pytest.mark.asyncio(loop_scope="module")
async def test_chaos_poison_flood_on_every_inbound_topic(pipeline: Pipeline) -> None:
    await _prove(pipeline, "poison flood")
