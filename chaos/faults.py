"""The faults the chaos runs inject, and the scenario that wraps each one in load and proof.

Each fault is an async function `(pipeline, rng) -> None` that injects the fault and
undoes it (restart, SIGCONT, scale back); `run_scenario` drives the seeded load
around it, measures the recovery time from the fault's start until every
instance is ready and no group lags, then checks the outcome against the oracle.
"""

from __future__ import annotations

import asyncio
import importlib.util
import random
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from aiokafka.admin import AIOKafkaAdminClient
from handoff_events import topics
from handoff_events.contracts import OrderPlaced
from handoff_events.envelope import encode, new_envelope

from chaos.harness import (
    REPO_ROOT,
    SERVICES,
    Load,
    Pipeline,
    Verdict,
    trace_entries,
    verify,
    wait_settled,
)

Fault = Callable[[Pipeline, random.Random], Awaitable[None]]


def _kafkactl() -> ModuleType:
    """deploy/kafka/kafkactl.py, shared with tests/support/kafka.py (same module name)."""
    name = "handoff_kafkactl"
    if name in sys.modules:
        return sys.modules[name]
    path = REPO_ROOT / "deploy" / "kafka" / "kafkactl.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


kafkactl = _kafkactl()


# ---- service faults -------------------------------------------------------------------------


async def sigkill_services(pipeline: Pipeline, rng: random.Random) -> None:
    """SIGKILL one instance of every service at a random moment of the load (mid-batch: the
    load is streaming), restart it, and while its group rebalances kill the other instance
    too (mid-rebalance)."""
    for service in SERVICES:
        first, second = rng.sample(pipeline.instances[service], 2)
        await asyncio.sleep(rng.uniform(0.2, 1.5))
        pipeline.signal(first, signal.SIGKILL)
        pipeline.restart(first)
        # The restarted process joins: the group is rebalancing in the next seconds.
        await asyncio.sleep(rng.uniform(1.0, 3.0))
        pipeline.signal(second, signal.SIGKILL)
        pipeline.restart(second)


async def scale_out_and_in(pipeline: Pipeline, rng: random.Random) -> None:
    """Scale every service 1 -> 3 -> 1 instances under load (clean hand-overs), then back to 2."""
    for service in SERVICES:
        while len(pipeline.instances[service]) > 1:
            await pipeline.remove(pipeline.instances[service][-1])
    await pipeline.wait_ready()
    for service in SERVICES:
        pipeline.add(service)
        pipeline.add(service)
    await pipeline.wait_ready()
    await asyncio.sleep(rng.uniform(1.0, 3.0))
    for service in SERVICES:
        while len(pipeline.instances[service]) > 1:
            await pipeline.remove(pipeline.instances[service][0])
    await pipeline.wait_ready()
    for service in SERVICES:
        pipeline.add(service)


# ---- broker faults --------------------------------------------------------------------------


async def _leader_of(bootstrap: str, topic: str, partition: int = 0) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        description = (await admin.describe_topics([topic]))[0]
    finally:
        await admin.close()
    for p in description["partitions"]:
        if p["partition"] == partition:
            return int(p["leader"])
    raise LookupError(f"no partition {partition} in {topic}")


async def _wait_isr(bootstrap: str, topic: str, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5_000)
        try:
            await admin.start()
            description = (await admin.describe_topics([topic]))[0]
            if all(len(p["isr"]) == 3 for p in description["partitions"]):
                return
        except Exception:  # brokers coming back: keep asking
            pass
        finally:
            await admin.close()
        await asyncio.sleep(1.0)
    raise TimeoutError(f"{topic}: ISR not back to 3 within {within:.0f}s")


async def kill_partition_leader(pipeline: Pipeline, rng: random.Random) -> None:
    """SIGKILL the broker leading partition 0 of the state topic, under load; restart it."""
    leader = await _leader_of(pipeline.bootstrap, pipeline.names(topics.STATE))
    await asyncio.to_thread(kafkactl.stop_node, leader, "KILL")
    await asyncio.sleep(rng.uniform(4.0, 8.0))
    await asyncio.to_thread(kafkactl.start_node, leader, 180.0)
    await _wait_isr(pipeline.bootstrap, pipeline.names(topics.STATE))


async def pause_broker(pipeline: Pipeline, rng: random.Random) -> None:
    """SIGSTOP a broker (the orders partition-0 leader) for ~15 s, then SIGCONT it."""
    node = await _leader_of(pipeline.bootstrap, pipeline.names(topics.ORDERS))
    await asyncio.to_thread(kafkactl.stop_node, node, "STOP")
    try:
        await asyncio.sleep(15.0)
    finally:
        await asyncio.to_thread(kafkactl.stop_node, node, "CONT")
    await _wait_isr(pipeline.bootstrap, pipeline.names(topics.STATE))


async def rolling_broker_restart(pipeline: Pipeline, rng: random.Random) -> None:
    """Restart every broker in turn (SIGTERM, start, wait for the ISR to refill)."""
    for node in (1, 2, 3):
        await asyncio.to_thread(kafkactl.stop_node, node, "TERM")
        await asyncio.to_thread(kafkactl.start_node, node, 180.0)
        await _wait_isr(pipeline.bootstrap, pipeline.names(topics.STATE))


# ---- combined -------------------------------------------------------------------------------


async def combined_faults(pipeline: Pipeline, rng: random.Random) -> None:
    """Faults at once: a broker paused (SIGSTOP ~15 s) while one instance of every service is
    SIGKILLed and restarted, then the partition leader of the state topic is SIGKILLed and
    restarted (the scenario adds a poison flood on every inbound topic)."""
    await asyncio.gather(pause_broker(pipeline, rng), sigkill_services(pipeline, rng))
    await kill_partition_leader(pipeline, rng)


# ---- poison ---------------------------------------------------------------------------------


def poison_topics() -> list[str]:
    """Every inbound topic a running service reads (it has a DLQ and a running reader)."""
    return [
        spec.dlq_of
        for spec in topics.CATALOGUE
        if spec.dlq_of is not None
        and any(w in SERVICES for w in spec.writers)
        # Compacted tables (KPIs) are read by group-less followers, not stream stages: no DLQ.
        and topics.BY_NAME[spec.dlq_of].cleanup != "compact"
    ]


def _valid_order_envelope() -> tuple[bytes, list[tuple[str, bytes]]]:
    from handoff_sim.marketplace import generate_orders

    order: OrderPlaced = generate_orders(99, 1)[0].order
    return encode(new_envelope(order, source="chaos/poison", tenant_id="acme", id="chaos-poison-1"))


async def flood_poison(load: Load, count_per_kind: int = 2) -> None:
    """Invalid JSON, a wrong schema, a huge value (~900 kB), missing and wrong headers on
    every inbound topic; keys are unique so each one can be found in the DLQ."""
    good_value, good_headers = _valid_order_envelope()
    stripped = [(k, v) for k, v in good_headers if k != "ce_type"]
    wrong_type = [(k, b"handoff.no.such.v1" if k == "ce_type" else v) for k, v in good_headers]
    kinds: dict[str, tuple[bytes, list[tuple[str, bytes]]]] = {
        "invalid_json": (b'{"order_id": "A-1", ', good_headers),
        "wrong_schema": (b'{"order_id": 12, "lines": "none"}', good_headers),
        "huge_value": (b'{"pad": "' + b"x" * 900_000 + b'"}', good_headers),
        "missing_headers": (good_value, []),
        "missing_ce_type": (good_value, stripped),
        "wrong_ce_type": (good_value, wrong_type),
    }
    n = 0
    for topic in poison_topics():
        for kind, (value, headers) in kinds.items():
            for _ in range(count_per_kind):
                n += 1
                await load.send_poison(topic, kind, f"poison-{kind}-{n}".encode(), value, headers)


# ---- the scenario ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    name: str
    fault: Fault | None
    seed: int
    orders: int = 16
    orders_per_second: float = 2.0
    fault_after_s: float = 3.0
    poison: bool = False


RECOVER_WITHIN_S = 300.0
"""Recovery deadline per fault: a wedged stage needs the stall timeout (30 s) to fail and a
process start to be replaced, which takes minutes on a loaded 2-core CI machine."""


async def run_scenario(
    pipeline: Pipeline,
    scenario: Scenario,
    settle_within: float = 240.0,
    recover_within: float = RECOVER_WITHIN_S,
) -> Verdict:
    rng = random.Random(scenario.seed)
    load = Load(
        pipeline.bootstrap,
        pipeline.prefix,
        scenario.seed,
        pipeline.run_dir / "oracle" / f"{scenario.name}.jsonl",
    )
    restarts_before = len(pipeline.restarts)
    marks = pipeline.log_marks()
    began = time.monotonic()
    stop = asyncio.Event()
    follower = asyncio.create_task(load.follow_allocations(stop))
    placing = asyncio.create_task(load.place_orders(scenario.orders, scenario.orders_per_second))
    try:
        await asyncio.sleep(scenario.fault_after_s)
        started = time.monotonic()
        if scenario.poison:
            await flood_poison(load)
        if scenario.fault is not None:
            await scenario.fault(pipeline, rng)
        await placing
        stuck: str | None = None
        try:
            recovery: float | None = await pipeline.wait_recovered(started, recover_within)
        except TimeoutError as exc:
            recovery, stuck = None, str(exc)
            settle_within = 30.0  # it will not settle by itself: take the outcome as it is
        seen = await wait_settled(
            load, pipeline.bootstrap, pipeline.prefix, settle_within, pipeline
        )
    finally:
        stop.set()
        placing.cancel()
        await asyncio.gather(follower, placing, return_exceptions=True)
        await load.close()
    dlq_topics = poison_topics() if scenario.poison else ()
    verdict = verify(load, seen, scenario.name, recovery, dlq_topics)
    verdict.restarts = pipeline.restarts[restarts_before:]
    verdict.took_s = time.monotonic() - began
    if stuck is not None:
        verdict.missing.insert(0, f"NOT RECOVERED: {stuck}")
    if not verdict.ok:
        verdict.membership = pipeline.membership_lines(marks)
    if verdict.one_sided:
        # The run's topics are deleted after the test: say now where those inputs are
        # (first, as the report shows only the first few mismatches).
        try:
            trace = await trace_entries(pipeline.bootstrap, pipeline.prefix, verdict.one_sided)
        except Exception as exc:  # the verdict stands either way
            trace = f" not traced: {exc!r}"
        verdict.mismatches.insert(0, "inputs behind the entries only one side has:" + trace)
    return verdict


SHORT: tuple[Scenario, ...] = (
    Scenario("sigkill service instances", sigkill_services, seed=101),
    Scenario("sigkill partition leader broker", kill_partition_leader, seed=102),
    Scenario("sigstop broker 15 s", pause_broker, seed=103),
    Scenario("rolling broker restart", rolling_broker_restart, seed=104),
    Scenario("scale 1 -> 3 -> 1", scale_out_and_in, seed=105),
    Scenario("poison flood", None, seed=106, poison=True),
)


COMBINED = Scenario("combined: pause + sigkills + leader kill + poison", combined_faults,
                    seed=107, poison=True)  # fmt: skip


def long_form(scale: int = 5) -> tuple[Scenario, ...]:
    """The same faults with `scale` times the load (and seeds of their own), then all of
    them at once (`combined_faults`, long form only)."""
    return tuple(
        Scenario(
            s.name,
            s.fault,
            seed=s.seed + 1000,
            orders=s.orders * scale,
            orders_per_second=s.orders_per_second * 1.5,
            fault_after_s=s.fault_after_s * 2,
            poison=s.poison,
        )
        for s in (*SHORT, COMBINED)
    )


def path_of(name: str) -> Path:
    return Path(name.replace(" ", "_"))
