"""End to end: the `make up` world, headless, on the test broker, from orders to delivered KPIs.

One run of `python -m handoff_sim.up --headless` (what `make up` starts) under a
unique topic prefix and a free block of ports: the six services, the development
servers and the simulated carriers and marketplaces, each its own process. While
it runs, the test reads Handoff's public outputs itself, as a marketplace would:
`handoff.shipments.state.v1` (read_committed) until shipments are delivered, and
`handoff.tracking.kpis.v1` until a snapshot counts deliveries. Then it stops the
world the way `make down` does (`--down`, from outside) and checks that no
process of that world is left, by pid and by scanning every process's
environment for the run's unique topic prefix.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

import pytest
from handoff_events import topics
from handoff_events.contracts import KpiSnapshot, ShipmentState
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

from tests.e2e import returns_support

REPO = Path(__file__).resolve().parents[2]
BASE_PORTS = (2525, 8081, 8082, 8083, 8084, 8085, 8086, 8091, 8092, 8093)
START_DEADLINE_S = 150.0


def free_port_offset() -> int:
    """An offset that moves every port of the world onto free ports, below the ephemeral
    range (others may run `make up`)."""
    return returns_support.free_port_offset(BASE_PORTS)


def processes_with(marker: str) -> list[int]:
    """Pids of every process whose environment holds `marker` (the run's topic prefix)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ and state != "Z":
            found.append(int(entry.name))
    return found


class PublicView:
    """What a marketplace sees: the latest shipment states and KPI snapshots."""

    def __init__(self, settings: ServiceSettings):
        self.states: dict[str, ShipmentState] = {}
        self.kpis: dict[str, KpiSnapshot] = {}
        self.followers = [
            TopicFollower(settings, topics.STATE, on_event=self._state),
            TopicFollower(settings, topics.KPIS, on_event=self._kpi),
        ]

    def _state(self, env, record) -> None:  # type: ignore[no-untyped-def]
        if isinstance(env.data, ShipmentState):
            self.states[env.data.shipment_id] = env.data

    def _kpi(self, env, record) -> None:  # type: ignore[no-untyped-def]
        if isinstance(env.data, KpiSnapshot):
            self.kpis[env.data.kpi_key] = env.data

    @property
    def delivered(self) -> list[ShipmentState]:
        return [s for s in self.states.values() if s.status == "delivered"]

    @property
    def kpi_delivered(self) -> int:
        return sum(k.shipments_delivered for k in self.kpis.values())


async def _wait_for_topics(
    settings: ServiceSettings, proc: asyncio.subprocess.Process, deadline: float
) -> None:
    """The world provisions its own topics; wait until it has, or fail if it died."""
    while True:
        try:
            follower = TopicFollower(settings, topics.STATE)
            await follower.start()
            await follower.stop()
            return
        except RuntimeError:
            pass
        assert proc.returncode is None, "make up exited before provisioning the topics"
        assert time.monotonic() < deadline, "topics were never provisioned"
        await asyncio.sleep(1.0)


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_make_up_delivers_orders_reports_kpis_and_stops_cleanly(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    run_dir = tmp_path / "run"
    summary_path = tmp_path / "summary.json"
    env = dict(
        os.environ,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        HANDOFF_TOPIC_PREFIX=prefix,
        HANDOFF_PARTITIONS="3",
        HANDOFF_LOG_JSON="true",
    )
    command = [
        sys.executable, "-m", "handoff_sim.up", "--headless",
        "--duration", "40", "--seed", "7", "--orders-per-second", "2",
        "--time-scale", "28800", "--drain", "90",
        "--port-offset", str(free_port_offset()),
        "--run-dir", str(run_dir), "--summary", str(summary_path),
        "--stop-timeout", "15",
    ]  # fmt: skip
    output = tmp_path / "up.out"
    with output.open("w") as out:
        proc = await asyncio.create_subprocess_exec(
            *command, cwd=REPO, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT
        )
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=3
    )
    pids: set[int] = set()
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        await _wait_for_topics(settings, proc, deadline)
        view = PublicView(settings)
        for follower in view.followers:
            await follower.start()
        try:
            # Orders flow through intake, rating, allocation, the carriers and tracking.
            while len(view.delivered) < 5 or view.kpi_delivered == 0:
                assert proc.returncode is None, (
                    f"make up exited early:\n{output.read_text()[-3000:]}"
                )
                assert time.monotonic() < deadline, (
                    f"no deliveries/KPIs in time: {len(view.states)} shipments, "
                    f"{len(view.delivered)} delivered, {view.kpi_delivered} in KPIs\n"
                    f"{output.read_text()[-3000:]}"
                )
                if (run_dir / "up.json").exists():
                    doc = json.loads((run_dir / "up.json").read_text())
                    pids |= {int(p["pid"]) for p in doc["processes"]} | {doc["supervisor"]}
                await asyncio.sleep(1.0)
        finally:
            for follower in view.followers:
                await follower.stop()
        doc = json.loads((run_dir / "up.json").read_text())
        pids |= {int(p["pid"]) for p in doc["processes"]} | {doc["supervisor"]}
        names = {p["name"] for p in doc["processes"]}
        assert {"order_intake", "rate_shopping", "carrier_allocation", "tracking",
                "notifications", "returns", "carriers", "marketplace"} <= names  # fmt: skip
        assert len({p["pid"] for p in doc["processes"]}) == len(doc["processes"])

        delivered = view.delivered
        assert all(s.carrier and s.tracking_number and s.delivered_at for s in delivered)
        assert {s.tenant_id for s in view.states.values()} <= {"acme", "globex", "northwind"}
        snapshot = next(k for k in view.kpis.values() if k.shipments_delivered > 0)
        assert snapshot.transit_hours_sum > 0 and snapshot.carrier

        # `make down`: from outside, through the pid file.
        down = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "handoff_sim.up", "--down", "--run-dir", str(run_dir),
            cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        down_output, _ = await asyncio.wait_for(down.communicate(), 150)
        assert down.returncode == 0, down_output.decode()
        assert await asyncio.wait_for(proc.wait(), 60) == 0, output.read_text()[-3000:]
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = output.read_text()
    summary = json.loads(summary_path.read_text())
    assert summary["orders_sent"] > 0 and summary["shipments_delivered"] > 0
    assert summary["kpis"]["delivered"] > 0
    assert "no process left behind" in text
    assert not (run_dir / "up.json").exists()
    assert [p for p in pids if _alive(p)] == []
    assert processes_with(f"HANDOFF_TOPIC_PREFIX={prefix}") == []


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"
