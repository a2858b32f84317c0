"""The fold and KPI stages against the real broker, plus the queries over the read model.

One shipment's lifecycle is produced to the (prefixed) input topics; the state
topic, the updates topic, the tracking-number join topic and the KPI topic are
read back read_committed. The fold engine is then stopped and a new one (with an
empty state directory, so it must restore from the changelog) continues.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from handoff_events import topics
from handoff_events.contracts import (
    Event,
    KpiSnapshot,
    NotificationSent,
    ShipmentState,
    ShipmentUpdate,
)
from handoff_events.envelope import decode, encode, new_envelope
from handoff_events.provision import provision
from handoff_events.runtime.http import Problem, TenantAuth, parse_api_keys, problem_handler
from handoff_events.stream.engine import StreamEngine
from handoff_tracking.adapters.read_model import ReadModels
from handoff_tracking.domain.exceptions import ExceptionPolicy
from handoff_tracking.entrypoints.http import ShipmentQueries
from handoff_tracking.handlers import build_fold, build_kpis
from handoff_tracking.settings import TrackingSettings
from starlette.applications import Starlette

from services.tracking.tests.fold_factories import (
    TRACKING,
    allocated,
    at,
    observed,
    quoted,
    requested,
)
from tests.support.streams import header, produce_raw, read_topic, until

pytestmark = [pytest.mark.kafka]
SHIPMENT_A = "shp_kafka_a"
SHIPMENT_B = "shp_kafka_b"


def _record(topic_key: str, data: Event, tenant: str, ce_id: str) -> tuple[str, bytes, Any]:
    value, headers = encode(
        new_envelope(data, source="test", tenant_id=tenant, id=ce_id, time=at(0))
    )
    return topic_key, value, headers


def _lifecycle(shipment: str, tenant: str) -> dict[str, list[tuple[str, bytes, Any]]]:
    obs = [
        observed("picked_up", 10, shipment_id=shipment),
        observed("in_transit", 120, shipment_id=shipment),
        observed("delivered", 600, shipment_id=shipment),
        observed("in_transit", 700, shipment_id=shipment),  # late scan after delivery
        observed("in_transit", 120, shipment_id=shipment),  # exact redelivery
    ]
    return {
        topics.INTAKE_SHIPMENTS: [
            _record(shipment, requested(shipment), tenant, f"{shipment}-req")
        ],
        topics.QUOTES: [_record(shipment, quoted(shipment), tenant, f"{shipment}-quo")],
        topics.ALLOCATIONS: [
            _record(
                shipment,
                allocated(shipment, tracking_number=f"{TRACKING}{shipment[-1]}"),
                tenant,
                f"{shipment}-alc",
            )
        ],
        topics.OBSERVATIONS: [
            _record(shipment, o, tenant, f"{shipment}-obs-{i}") for i, o in enumerate(obs)
        ],
    }


def _latest_states(records: list[Any]) -> dict[str, ShipmentState]:
    latest: dict[str, ShipmentState] = {}
    for record in records:
        data = decode(record.value, record.headers).data
        assert isinstance(data, ShipmentState)
        latest[record.key.decode()] = data
    return latest


@pytest.fixture
async def prefix(kafka_bootstrap: str, unique_name: str) -> str:
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    return prefix


def _now() -> datetime:
    """The fold's clock: half a day into the factories' timeline, after every scan here and
    before the promise (36 h) or a stuck parcel (48 h). With the wall clock the exception
    detector would flag these fixed-date shipments as late or stuck once the real date
    passes them, and every version count below would be off by the exceptions."""
    return at(12 * 60)


def _settings(kafka_bootstrap: str, prefix: str, state_dir: Path) -> TrackingSettings:
    return TrackingSettings(
        topic_prefix=prefix,
        partitions=3,
        kafka_bootstrap_servers=kafka_bootstrap,
        state_dir=state_dir,
        log_json=False,
    )


async def test_lifecycle_folds_into_state_updates_kpis_and_survives_a_restart(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    names = topics.Names(prefix)
    settings = _settings(kafka_bootstrap, prefix, tmp_path / "first")
    for shipment, tenant in ((SHIPMENT_A, "acme"), (SHIPMENT_B, "globex")):
        for topic, records in _lifecycle(shipment, tenant).items():
            await produce_raw(kafka_bootstrap, names(topic), records)

    fold = StreamEngine(build_fold(ExceptionPolicy(), check_every_s=3600), settings, clock=_now)
    kpi = StreamEngine(build_kpis(refresh_every_s=0.5), settings)
    await fold.start()
    await kpi.start()
    try:
        states: dict[str, ShipmentState] = {}

        async def delivered_on_state_topic() -> bool:
            nonlocal states
            states = _latest_states(
                await read_topic(kafka_bootstrap, names(topics.STATE), 1, timeout=1)
            )
            return all(
                s in states and states[s].status == "delivered" and states[s].version == 7
                for s in (SHIPMENT_A, SHIPMENT_B)
            )

        await _eventually(delivered_on_state_topic, "both shipments delivered on the state topic")
        a = states[SHIPMENT_A]
        assert a.tenant_id == "acme" and a.order_id == "A-1001"
        assert a.carrier == "swift" and a.lane == "DE-10>DE-80"
        assert a.picked_up_at == at(10) and a.delivered_at == at(600)
        late = [h for h in a.history if h.occurred_at == at(700)]
        assert len(late) == 1 and not late[0].applied  # kept, did not move the status back

        updates = await read_topic(kafka_bootstrap, names(topics.UPDATES), 12, timeout=20)
        mine = [decode(r.value, r.headers).data for r in updates if r.key.decode() == SHIPMENT_A]
        assert all(isinstance(u, ShipmentUpdate) for u in mine)
        assert sorted((u.milestone, u.status) for u in mine) == sorted(  # type: ignore[union-attr]
            [
                ("requested", "requested"),
                ("quoted", "quoted"),
                ("allocated", "allocated"),
                ("status_changed", "picked_up"),
                ("status_changed", "in_transit"),
                ("delivered", "delivered"),
            ]
        )
        ids = [header(r, "ce_id") for r in updates]
        assert len(ids) == len(set(ids)) == 12

        numbers = await read_topic(kafka_bootstrap, names(topics.TRACKING_NUMBERS), 2, timeout=10)
        assert {r.key.decode() for r in numbers} == {f"swift/{TRACKING}a", f"swift/{TRACKING}b"}

        snapshots: list[KpiSnapshot] = []

        async def kpis_published() -> bool:
            nonlocal snapshots
            records = await read_topic(kafka_bootstrap, names(topics.KPIS), 2, timeout=1)
            snapshots = [decode(r.value, r.headers).data for r in records]  # type: ignore[misc]
            return len(snapshots) >= 2

        await _eventually(kpis_published, "KPI snapshots for both tenants")
        acme = next(s for s in snapshots if s.tenant_id == "acme")
        assert acme.kpi_key == "swift/DE-10>DE-80/acme/2026-11-20"
        assert acme.shipments_delivered == 1 and acme.delivered_on_time == 1
        assert acme.first_attempt_deliveries == 1 and acme.exceptions == 0
        assert acme.transit_hours == [pytest.approx(590 / 60, abs=0.001)]
        assert acme.cost_total is not None and acme.cost_total.amount == 499
    finally:
        await fold.stop()
        await kpi.stop()

    # Restart with an empty state directory: the store must come back from the changelog.
    await produce_raw(
        kafka_bootstrap,
        names(topics.NOTIFICATION_OUTCOMES),
        [
            _record(
                SHIPMENT_A,
                NotificationSent(
                    notification_id="n1",
                    shipment_id=SHIPMENT_A,
                    milestone="delivered",
                    channel="email",
                    recipient_ref="r1",
                    sent_at=at(601),
                ),
                "acme",
                "notif-1",
            ),
            # A redelivered scan must not be applied twice after the restore either.
            _lifecycle(SHIPMENT_A, "acme")[topics.OBSERVATIONS][2],
        ],
    )
    again = StreamEngine(
        build_fold(ExceptionPolicy(), check_every_s=3600),
        _settings(kafka_bootstrap, prefix, tmp_path / "second"),
        clock=_now,
    )
    await again.start()
    try:
        await until(lambda: again.ready and len(again.stores) == 3, 30, "second engine restored")
        restored = {k: v for store in again.stores.values() for k, v in store.items()}
        assert restored[SHIPMENT_B].status == "delivered"

        async def notification_folded() -> bool:
            states = _latest_states(
                await read_topic(kafka_bootstrap, names(topics.STATE), 1, timeout=1)
            )
            return states[SHIPMENT_A].version == 8

        await _eventually(notification_folded, "the notification outcome folded after the restart")
        states = _latest_states(
            await read_topic(kafka_bootstrap, names(topics.STATE), 1, timeout=1)
        )
        assert states[SHIPMENT_A].status == "delivered"
        assert "handoff.notification.sent.v1" in {h.type for h in states[SHIPMENT_A].history}
        updates = await read_topic(kafka_bootstrap, names(topics.UPDATES), 12, timeout=10, settle=1)
        assert len(updates) == 12  # nothing re-announced after the restore

        await _check_queries(settings)
    finally:
        await again.stop()


async def _check_queries(settings: TrackingSettings) -> None:
    models = ReadModels(settings)
    await models.start()
    try:
        await until(lambda: models.caught_up, 30, "read model caught up")
        await until(
            lambda: (s := models.shipments.get("acme", SHIPMENT_A)) is not None and s.version == 8,
            30,
            "read model has the latest state",
        )
        queries = ShipmentQueries(models, TenantAuth(parse_api_keys(settings.api_keys)))
        app = Starlette(routes=queries.routes(), exception_handlers={Problem: problem_handler})
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://tracking") as client:
            acme = {"X-Api-Key": "acme-key"}
            got = await client.get(f"/v1/shipments/{SHIPMENT_A}", headers=acme)
            assert got.status_code == 200
            state = msgspec.json.decode(got.content, type=ShipmentState)
            assert state.status == "delivered" and state.version == 8

            other = await client.get(
                f"/v1/shipments/{SHIPMENT_A}", headers={"X-Api-Key": "globex-key"}
            )
            assert other.status_code == 404
            assert other.headers["content-type"] == "application/problem+json"
            assert "acme" not in other.text and "swift" not in other.text

            then = await client.get(
                f"/v1/shipments/{SHIPMENT_A}",
                params={"as_of": "2026-11-20T10:00:00Z"},
                headers=acme,
            )
            assert then.status_code == 200
            earlier = msgspec.json.decode(then.content, type=ShipmentState)
            assert earlier.status == "in_transit" and earlier.delivered_at is None

            events = (await client.get(f"/v1/shipments/{SHIPMENT_A}/events", headers=acme)).json()
            assert len(events["events"]) == 8

            page = (
                await client.get("/v1/shipments", params={"status": "delivered"}, headers=acme)
            ).json()
            assert [i["shipment_id"] for i in page["items"]] == [SHIPMENT_A]

            kpis = (await client.get("/v1/kpis", headers=acme)).json()
            assert [k["snapshot"]["tenant_id"] for k in kpis["items"]] == ["acme"]
            assert kpis["items"][0]["rates"]["on_time_rate"] == 1.0

            unauthorised = await client.get(f"/v1/shipments/{SHIPMENT_A}")
            assert unauthorised.status_code == 401
    finally:
        await models.stop()


async def _eventually(check: Any, what: str, limit_s: float = 40.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"{what}: not reached within {limit_s}s")
        await asyncio.sleep(0.2)


async def test_a_second_instance_takes_over_partitions_without_losing_or_repeating(
    kafka_bootstrap: str, prefix: str, tmp_path: Path
) -> None:
    """Rebalance: partitions move from the first instance to a second one mid-stream; the
    second restores what the first committed and carries on."""
    names = topics.Names(prefix)
    shipments = [f"shp_rb{i:03d}" for i in range(30)]
    statuses = ["picked_up", "in_transit", "out_for_delivery", "delivered"]
    batches = [
        [
            _record(s, observed(status, 10 * (n + 1), shipment_id=s), "acme", f"{s}-{n}")
            for s in shipments
        ]
        for n, status in enumerate(statuses)
    ]
    first = StreamEngine(
        build_fold(ExceptionPolicy(), 3600),
        _settings(kafka_bootstrap, prefix, tmp_path / "one"),
        clock=_now,
    )
    second = StreamEngine(
        build_fold(ExceptionPolicy(), 3600),
        _settings(kafka_bootstrap, prefix, tmp_path / "two"),
        clock=_now,
    )
    await first.start()
    try:
        await produce_raw(kafka_bootstrap, names(topics.OBSERVATIONS), batches[0] + batches[1])
        await until(lambda: first.ready and len(first.stores) == 3, 30, "first instance owns all")
        await until(
            lambda: sum(len(s) for s in first.stores.values()) == len(shipments),
            30,
            "first instance folded the first scans",
        )
        await second.start()
        await until(
            lambda: second.ready and len(second.stores) >= 1 and len(first.stores) < 3,
            40,
            "partitions handed over to the second instance",
        )
        await produce_raw(kafka_bootstrap, names(topics.OBSERVATIONS), batches[2] + batches[3])

        async def all_delivered() -> bool:
            records = await read_topic(kafka_bootstrap, names(topics.STATE), 1, timeout=1)
            states = _latest_states(records)
            return len(states) == len(shipments) and all(
                s.status == "delivered" and s.version == 4 for s in states.values()
            )

        await _eventually(all_delivered, "every shipment delivered after the hand-over")
    finally:
        await second.stop()
        await first.stop()
    updates = await read_topic(kafka_bootstrap, names(topics.UPDATES), 4 * len(shipments), settle=1)
    ids = [header(r, "ce_id") for r in updates]
    assert len(ids) == len(set(ids)) == 4 * len(shipments)
