"""Exactly-once effects under SIGKILL: the proof behind docs/decisions/0002.

A producer streams records while the processing process is killed with SIGKILL at
random moments and restarted. Afterwards, read_committed: every input produced exactly
one output (no loss, no duplicate), and the changelog's state equals a fault-free count.
The runner's stores are bounded far below its shipments, so most records are folded
onto states read back from batches the store packed (decision 0008, addendum).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from handoff_events import topics
from handoff_events.contracts import ShipmentCancelled
from handoff_events.envelope import encode, new_envelope
from handoff_events.provision import provision

from tests.integration.engine_runner import CHANGELOG, Tally
from tests.support.streams import header, produce_raw, read_topic

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
RUNNER = Path(__file__).with_name("engine_runner.py")


def _spawn(bootstrap: str, prefix: str, state_dir: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.Popen(
        [sys.executable, str(RUNNER), bootstrap, prefix, str(state_dir)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_sigkill_at_random_moments_loses_and_duplicates_nothing(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    names = topics.Names(prefix)
    await provision(kafka_bootstrap, prefix=prefix, partitions=3)
    rng = random.Random(20261120)
    shipments = [f"shp_{i:04d}" for i in range(300)]
    total = 6000
    records = []
    expected = Counter[str]()
    for n in range(total):
        shipment = rng.choice(shipments)
        expected[shipment] += 1
        data = ShipmentCancelled(
            shipment_id=shipment,
            order_id="o",
            cancelled_at=datetime(2026, 11, 20, tzinfo=UTC),
            reason=str(n),
        )
        env = new_envelope(data, source="test", tenant_id="acme", id=f"in-{n}")
        records.append((shipment, *encode(env)))

    proc = _spawn(kafka_bootstrap, prefix, tmp_path)
    kills = 0
    try:
        for chunk in range(6):
            part = records[chunk * 1000 : (chunk + 1) * 1000]
            await produce_raw(kafka_bootstrap, names(topics.INTAKE_SHIPMENTS), part)
            await asyncio.sleep(rng.uniform(0.5, 2.5))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            proc = _spawn(kafka_bootstrap, prefix, tmp_path)
        outputs = await read_topic(
            kafka_bootstrap, names(topics.ALLOCATIONS), total, timeout=120, settle=2
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    assert kills == 6
    ids = [header(r, "ce_id") for r in outputs]
    assert len(ids) == total, f"expected {total} outputs, got {len(ids)}"
    assert len(set(ids)) == total, "an output was committed twice"
    changelog = await read_topic(kafka_bootstrap, names(CHANGELOG), 1, timeout=10)
    latest: dict[str, Tally] = {}
    for record in changelog:
        latest[record.key.decode()] = msgspec.msgpack.decode(record.value, type=Tally)
    assert {k: v.seen for k, v in latest.items()} == dict(expected)
