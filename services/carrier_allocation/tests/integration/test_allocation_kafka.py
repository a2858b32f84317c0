"""Carrier allocation on a real broker: capacity holds across instances and crashes; re-tendering.

Each test runs under its own topic prefix, provisioned from the catalogue with 3
partitions, and checks outcomes on the allocations topic read with
read_committed (what a downstream service would see).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path

import pytest
from handoff_carrier_allocation.bootstrap import build_app
from handoff_carrier_allocation.settings import AllocationSettings
from handoff_events import topics
from handoff_events.contracts import TenderRequested
from handoff_events.provision import provision
from handoff_events.runtime.app import ServiceApp
from handoff_events.stream.follow import TopicFollower
from handoff_sim.tender_responder import CarrierBehaviour, ResponderConfig, run_tender_responder

from services.carrier_allocation.tests.factories import SHIP_DAY, quote
from services.carrier_allocation.tests.integration.harness import (
    feed,
    wait_until,
    watch,
    write_config,
)

pytestmark = pytest.mark.kafka

HOT_CAPACITY = "default_daily_limit = 100000\n[carriers.hot]\ndaily_limit = 50\n"
SHIPMENTS = 200
HOT_BUCKET = f"hot/HUB-BER-1/{SHIP_DAY.isoformat()}"


def hot_first(_sid: str) -> list:
    # every shipment's best quote is `hot`, for the same hub and ship day
    return [quote("hot", 300), quote("nordpost", 500), quote("swift", 700)]


def settings_for(
    prefix: str, bootstrap: str, config_dir: Path, state_dir: Path, **kw: object
) -> AllocationSettings:
    return AllocationSettings(
        topic_prefix=prefix,
        partitions=3,
        kafka_bootstrap_servers=bootstrap,
        config_dir=config_dir,
        state_dir=state_dir,
        follow_kpis=False,
        **kw,  # type: ignore[arg-type]
    )


@contextlib.asynccontextmanager
async def responder(settings: AllocationSettings, config: ResponderConfig) -> AsyncIterator[None]:
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(run_tender_responder(settings, config, stop=stop, started=started))
    await asyncio.wait_for(started.wait(), 30)
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


def everyone_accepts(*carriers: str) -> ResponderConfig:
    return ResponderConfig(carriers={c: CarrierBehaviour(accept=1.0) for c in carriers})


def owned(apps: list[ServiceApp], stage: int) -> list[list[int]]:
    return [sorted(app.engines[stage].tasks) for app in apps]


async def test_two_instances_never_overbook_a_carrier(kafka_bootstrap, unique_name, tmp_path):
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    config_dir = write_config(tmp_path / "config", capacity=HOT_CAPACITY)
    settings = [
        settings_for(prefix, kafka_bootstrap, config_dir, tmp_path / f"s{i}", instance_id=f"i{i}")
        for i in range(2)
    ]
    apps = [build_app(s, scorecards=dict) for s in settings]
    async with responder(settings[0], everyone_accepts("hot", "nordpost", "swift")):
        await asyncio.gather(*(app.start() for app in apps))
        try:
            # both instances own part of each stage (3 partitions shared by 2 members)
            await wait_until(
                lambda: (
                    all(a.ready for a in apps)
                    and all(
                        sorted(p for parts in owned(apps, stage) for p in parts) == [0, 1, 2]
                        and all(owned(apps, stage))
                        for stage in (0, 1)
                    )
                ),
                30,
                "both instances to share the partitions",
            )
            outcomes, follower = await watch(settings[0])
            ids = [f"shp_race_{n:03d}" for n in range(SHIPMENTS)]
            await feed(settings[0], ids, hot_first)
            await wait_until(lambda: len(outcomes.decided) == SHIPMENTS, 45, "every decision")
            await follower.stop()
            # the bucket's single owner holds exactly 50 reservations
            holders = [
                store[HOT_BUCKET]
                for app in apps
                for store in app.engines[1].stores.values()
                if HOT_BUCKET in store
            ]
            assert len(holders) == 1 and holders[0].held == 50
            slots = [
                key
                for app in apps
                for store in app.engines[1].stores.values()
                for key in store
                if key.startswith(HOT_BUCKET + "#")
            ]
            assert len(slots) == 50
        finally:
            await asyncio.gather(*(app.stop() for app in apps))
    assert len(outcomes.allocated_to("hot")) == 50
    assert len(outcomes.allocated_to("nordpost")) == SHIPMENTS - 50
    assert all(len(evs) == 1 for evs in outcomes.allocated.values())
    assert not outcomes.failed
    assert len(outcomes.event_ids) == len(set(outcomes.event_ids))
    # the refused ones were tried on `hot` first and say so in their decision
    refused = outcomes.allocated[next(iter(outcomes.allocated_to("nordpost")))][0]
    assert [(c.carrier, c.outcome) for c in refused.decision.candidates] == [
        ("hot", "no_capacity"),
        ("nordpost", "chosen"),
        ("swift", "lost"),
    ]


SCRIPT = Path(__file__).with_name("run_instance.py")
REPO_ROOT = Path(__file__).resolve().parents[4]


def spawn_instance(
    prefix: str, bootstrap: str, config_dir: Path, state_dir: Path, name: str
) -> subprocess.Popen[str]:
    """An allocation instance in its own OS process (see run_instance.py)."""
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), prefix, bootstrap, str(config_dir), str(state_dir), name],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


@pytest.fixture
def instances() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


async def _wait_ready(proc: subprocess.Popen[str], within_s: float) -> None:
    assert proc.stdout is not None

    def read_until_ready() -> str:
        assert proc.stdout is not None
        line = "?"
        while line and line.strip() != "ready":
            line = proc.stdout.readline()
        return line.strip()

    line = await asyncio.wait_for(asyncio.to_thread(read_until_ready), within_s)
    assert line == "ready", f"instance exited before it was ready (exit code {proc.poll()})"


async def test_capacity_holds_when_an_instance_is_killed_midway(
    kafka_bootstrap, unique_name, tmp_path, instances
):
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    config_dir = write_config(tmp_path / "config", capacity=HOT_CAPACITY)
    for i in range(2):
        instances.append(
            spawn_instance(prefix, kafka_bootstrap, config_dir, tmp_path / f"state{i}", f"proc{i}")
        )
    await asyncio.gather(*(_wait_ready(p, 40) for p in instances))
    settings = settings_for(prefix, kafka_bootstrap, config_dir, tmp_path / "observer")
    # answers take a moment, so the kill lands while most shipments are in flight
    slow = ResponderConfig(
        carriers={
            c: CarrierBehaviour(accept=1.0, delay_s=0.3) for c in ("hot", "nordpost", "swift")
        }
    )
    async with responder(settings, slow):
        outcomes, follower = await watch(settings)
        ids = [f"shp_kill_{n:03d}" for n in range(SHIPMENTS)]
        # Half before the kill, half after: however fast the first half is decided (its
        # answers may all land in one transaction), the kill falls between decisions.
        half = SHIPMENTS // 2
        await feed(settings, ids[:half], hot_first)
        await wait_until(lambda: len(outcomes.decided) >= 10, 30, "the first decisions")
        instances[0].send_signal(signal.SIGKILL)
        decided_at_kill = len(outcomes.decided)
        await feed(settings, ids[half:], hot_first)
        await wait_until(lambda: len(outcomes.decided) == SHIPMENTS, 50, "every decision")
        await follower.stop()
    instances[1].send_signal(signal.SIGTERM)
    assert decided_at_kill < SHIPMENTS  # the kill really happened midway
    assert len(outcomes.allocated_to("hot")) == 50
    assert len(outcomes.allocated_to("nordpost")) == SHIPMENTS - 50
    assert all(len(evs) == 1 for evs in outcomes.allocated.values())
    assert len(outcomes.event_ids) == len(set(outcomes.event_ids))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_decline_retenders_and_silence_times_out(kafka_bootstrap, unique_name, tmp_path):
    """dec declines → mute is tendered at once; mute stays silent → times out → ok (over HTTP)."""
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    port = _free_port()
    config_dir = write_config(
        tmp_path / "config",
        capacity="default_daily_limit = 10\n",
        tendering=f'[carriers.ok]\ntender_via = "http"\ntender_url = "http://127.0.0.1:{port}/tenders"\n'
        "timeout_s = 2.0\nretries = 1\n",
    )
    settings = settings_for(
        prefix, kafka_bootstrap, config_dir, tmp_path / "state", tender_timeout_s=2.0
    )
    settings = settings.model_copy(update={"follow_kpis": True})
    sim = ResponderConfig(
        carriers={
            "dec": CarrierBehaviour(accept=0.0),
            "mute": CarrierBehaviour(silent=1.0),
            "ok": CarrierBehaviour(accept=1.0),
        },
        http_port=port,
    )
    tenders: list[TenderRequested] = []
    tender_follower = TopicFollower(
        settings,
        topics.TENDERS,
        on_event=lambda env, _r: (
            tenders.append(env.data) if isinstance(env.data, TenderRequested) else None
        ),
    )
    app = build_app(settings)
    async with responder(settings, sim):
        await app.start()
        try:
            await tender_follower.start()
            outcomes, follower = await watch(settings)
            await feed(
                settings,
                ["shp_retender"],
                lambda _sid: [
                    quote("dec", 100),
                    quote("mute", 200),
                    quote("ok", 300, eta=date(2026, 11, 22)),
                ],
            )
            await wait_until(lambda: len(outcomes.decided) == 1, 30, "the allocation")
            await follower.stop()
            await tender_follower.stop()
        finally:
            await app.stop()
    allocated = outcomes.allocated["shp_retender"][0]
    assert allocated.carrier == "ok" and allocated.tracking_number.startswith("OK")
    assert [(c.carrier, c.outcome) for c in allocated.decision.candidates] == [
        ("dec", "declined"),
        ("mute", "timed_out"),
        ("ok", "chosen"),
    ]
    assert [(f.carrier, f.outcome) for f in outcomes.tender_failures] == [
        ("dec", "declined"),
        ("mute", "timed_out"),
    ]
    by_carrier = {t.carrier: t for t in tenders}
    assert list(by_carrier) == ["dec", "mute", "ok"]
    # the decline moved on before dec's own deadline; mute was given its full deadline
    assert by_carrier["mute"].requested_at < by_carrier["dec"].respond_by
    assert by_carrier["ok"].requested_at >= by_carrier["mute"].respond_by
