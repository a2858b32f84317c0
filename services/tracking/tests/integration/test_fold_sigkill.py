"""The tracking fold under SIGKILL: state and updates identical to a run without faults.

A producer streams 20,000 carrier observations over 2,000 shipments (out of
order, with late scans after delivery, unknown codes and duplicates) while the
fold runs as a separate OS process (`python -m handoff_tracking`, fold stage
only) that is SIGKILLed at random moments and restarted. Afterwards:

* every shipment's latest record on the state topic equals the pure fold of its
  generated events (the oracle is the input, not a second run);
* the updates topic (read_committed) holds no duplicate id, exactly one
  `delivered` update per shipment, and never two different ids for the same
  (shipment, milestone, status, cause time, exception kind).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, TopicPartition
from handoff_events import topics
from handoff_events.contracts import ShipmentState, ShipmentUpdate, TrackingObserved
from handoff_events.envelope import decode, encode, new_envelope
from handoff_events.provision import provision
from handoff_events.values import Location, Proof
from handoff_tracking.domain.fold import FoldInput, fold, fold_all

from tests.support.streams import header, produce_raw

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[4]
SHIPMENTS = 2000
PER_SHIPMENT = 10
WAVES = 5
TENANT = "acme"


def _scans(shipment: str, base: datetime, rng: random.Random) -> list[TrackingObserved]:
    """Ten scans of one parcel: a lifecycle plus a late scan, an unknown code and a duplicate."""
    detour = rng.choice(["delivery_attempt_failed", "exception", "available_for_pickup"])
    plan = [
        ("picked_up", 0, "Berlin"),
        ("in_transit", 30, "Berlin"),
        ("in_transit", 90, "Leipzig"),
        ("out_for_delivery", 180, "Munich"),
        (detour, 200, "Munich"),
        ("out_for_delivery", 240, "Munich"),
        ("delivered", 260, "Munich"),
        ("in_transit", 300, "Munich"),  # late scan after delivery
        ("unknown", 150, "Leipzig"),
    ]
    scans = [
        TrackingObserved(
            shipment_id=shipment,
            carrier="swift",
            tracking_number=f"SW{shipment[-6:]}",
            carrier_event_id=f"{shipment}-{n}",
            carrier_code="ZZ9" if status == "unknown" else status[:3].upper(),
            status=status,  # type: ignore[arg-type]
            occurred_at=base + timedelta(minutes=minute),
            received_at=base + timedelta(minutes=minute + 1),
            location=Location(city=city, country="DE"),
            proof=Proof(signed_by="R. Cipient") if status == "delivered" else None,
            unknown_code=status == "unknown",
        )
        for n, (status, minute, city) in enumerate(plan)
    ]
    original = rng.choice(scans)
    if rng.random() < 0.5:
        duplicate = original  # the same carrier event again
    else:  # the same content under another carrier event id
        duplicate = msgspec.structs.replace(original, carrier_event_id=f"{shipment}-copy")
    scans.append(duplicate)
    if rng.random() < 0.6:
        rng.shuffle(scans)  # out of order
    return scans


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spawn(bootstrap: str, prefix: str, state_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "HANDOFF_TOPIC_PREFIX": prefix,
        "HANDOFF_PARTITIONS": "3",
        "HANDOFF_STATE_DIR": str(state_dir),
        "HANDOFF_HTTP_PORT": str(_free_port()),
        "HANDOFF_LOG_LEVEL": "WARNING",
        "HANDOFF_TRACKING_STAGES": "fold",
        "HANDOFF_CONFIG_DIR": str(REPO / "deploy" / "config"),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "handoff_tracking"],
            env=env,
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )


async def _committed_all(bootstrap: str, group: str, expected: dict[TopicPartition, int]) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return all(
        (meta := offsets.get(tp)) is not None and meta.offset >= end for tp, end in expected.items()
    )


async def _end_offsets(bootstrap: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        return {tp: int(o) for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def _read_all(bootstrap: str, topic: str) -> list[ConsumerRecord]:
    """Every committed record of the topic up to its current end (read_committed)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)  # the last stable offsets, read_committed
        for tp, first in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, first)
        out: list[ConsumerRecord] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            for records in (await consumer.getmany(timeout_ms=500, max_records=10_000)).values():
                out.extend(records)
        return out
    finally:
        await consumer.stop()


async def test_sigkill_tracking_fold(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    names = topics.Names(prefix)
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    rng = random.Random(20261121)
    # Recent event times: no shipment looks stuck (48 h) and none has a promise to miss,
    # so the timer has nothing to add and the pure fold of the input is the whole truth.
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=6)
    by_shipment: dict[str, list[TrackingObserved]] = {}
    planned: list[list[tuple[str, int, TrackingObserved]]] = [[] for _ in range(WAVES)]
    for i in range(SHIPMENTS):
        shipment = f"shp_kill{i:06d}"
        scans = _scans(shipment, base + timedelta(seconds=i), rng)
        by_shipment[shipment] = scans
        planned[i * WAVES // SHIPMENTS] += [(shipment, n, scan) for n, scan in enumerate(scans)]
    arrival: dict[str, list[FoldInput]] = defaultdict(list)
    waves: list[list[tuple[str, bytes, Any]]] = []
    for wave in planned:
        rng.shuffle(wave)
        records = []
        for shipment, n, scan in wave:
            ce_id = f"{shipment}-in-{n}"
            env = new_envelope(scan, source="test", tenant_id=TENANT, id=ce_id)
            records.append((shipment, *encode(env)))
            arrival[shipment].append(FoldInput(event_id=ce_id, tenant_id=TENANT, event=scan))
        waves.append(records)
    assert sum(len(w) for w in waves) == SHIPMENTS * PER_SHIPMENT

    log = tmp_path / "tracking.log"
    proc = _spawn(kafka_bootstrap, prefix, tmp_path / "state", log)
    kills = 0
    try:
        for wave in waves:
            await produce_raw(kafka_bootstrap, names(topics.OBSERVATIONS), wave)
            if kills < 4:
                await asyncio.sleep(rng.uniform(0.5, 3.0))
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                proc = _spawn(kafka_bootstrap, prefix, tmp_path / "state", log)
        ends = await _end_offsets(kafka_bootstrap, names(topics.OBSERVATIONS))
        group = names.group("tracking", "fold")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while not await _committed_all(kafka_bootstrap, group, ends):
            assert proc.poll() is None, log.read_text()[-3000:]
            assert loop.time() < deadline, "the fold did not catch up in time"
            await asyncio.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert kills == 4

    # State topic == the pure fold of each shipment's generated events.
    records = await _read_all(kafka_bootstrap, names(topics.STATE))
    latest: dict[str, bytes] = {}
    for record in records:
        state = decode(record.value, record.headers).data
        assert isinstance(state, ShipmentState)
        latest[record.key.decode()] = msgspec.json.encode(state)
    assert len(latest) == SHIPMENTS
    mismatched = []
    for shipment, scans in by_shipment.items():
        oracle = fold_all(
            FoldInput(event_id=f"{shipment}-in-{n}", tenant_id=TENANT, event=scan)
            for n, scan in enumerate(scans)
        )
        if latest[shipment] != msgspec.json.encode(oracle):
            mismatched.append(shipment)
    assert mismatched == [], (
        f"{len(mismatched)} states differ from the oracle, e.g. {mismatched[:3]}"
    )

    # Updates: no duplicates, one delivered per shipment, one id per milestone occurrence.
    updates = await _read_all(kafka_bootstrap, names(topics.UPDATES))
    ids = [header(r, "ce_id") for r in updates]
    assert len(ids) == len(set(ids)), "an update was committed twice"
    per_occurrence: dict[tuple[object, ...], set[str]] = defaultdict(set)
    delivered: dict[str, set[str]] = defaultdict(set)
    for record, ce_id in zip(updates, ids, strict=True):
        update = decode(record.value, record.headers).data
        assert isinstance(update, ShipmentUpdate) and ce_id is not None
        kind = update.exception.kind if update.exception else None
        key = (update.shipment_id, update.milestone, update.status, update.occurred_at, kind)
        per_occurrence[key].add(ce_id)
        if update.milestone == "delivered":
            delivered[update.shipment_id].add(ce_id)
    assert all(len(v) == 1 for v in per_occurrence.values())
    assert len(delivered) == SHIPMENTS and all(len(v) == 1 for v in delivered.values())
    # One input topic keeps each shipment's arrival order, so the committed updates must be
    # exactly the milestones of a fault-free fold in that order: none lost, none added.
    expected_ids: set[str] = set()
    for events in arrival.values():
        state: ShipmentState | None = None
        for event in events:
            state, milestones = fold(state, event)
            expected_ids |= {m.update_id for m in milestones}
    assert set(ids) == expected_ids
