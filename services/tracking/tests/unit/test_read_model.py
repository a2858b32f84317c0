"""The query read model keeps each state as its record's JSON and decodes it per request."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka.structs import ConsumerRecord
from handoff_events.contracts import ShipmentState
from handoff_events.envelope import DecodeError
from handoff_events.runtime.settings import ServiceSettings
from handoff_tracking.adapters import read_model
from handoff_tracking.adapters.read_model import ReadModels, ShipmentReadModel
from handoff_tracking.adapters.state_codec import ShipmentStateCodec
from handoff_tracking.settings import TrackingSettings

from services.tracking.tests.fold_factories import folded_shipment


def _record(
    value: bytes | None, headers: list[tuple[str, bytes]], offset: int = 0, key: bytes = b"k"
) -> ConsumerRecord:
    return ConsumerRecord(
        topic="handoff.shipments.state.v1", partition=0, offset=offset, timestamp=0,
        timestamp_type=0, key=key, value=value, checksum=None, serialized_key_size=len(key),
        serialized_value_size=len(value or b""), headers=headers,
    )  # fmt: skip


def test_a_state_record_is_kept_as_its_json_and_served_decoded() -> None:
    state = folded_shipment("shp_1", delivered=True)
    raw, _ = ShipmentStateCodec().encode(state.shipment_id, state)
    model = ShipmentReadModel()

    model.apply_json(raw)

    kept = model._states["shp_1"]
    assert kept[0] is raw and kept[1:3] == ("acme", "delivered")  # the bytes, not an object
    assert model.get("acme", "shp_1") == state
    assert model.get("globex", "shp_1") is None  # another tenant's: as if missing


def test_paging_filters_on_the_kept_status_and_decodes_only_what_it_returns() -> None:
    model = ShipmentReadModel()
    for sid, delivered in (("shp_a", True), ("shp_b", False), ("shp_c", True), ("shp_d", True)):
        model.apply(folded_shipment(sid, delivered=delivered))
    model.apply(folded_shipment("shp_x", tenant="globex", delivered=True))

    items, cursor = model.page("acme", {"delivered"}, None, 2)

    assert [s.shipment_id for s in items] == ["shp_a", "shp_c"]
    assert all(isinstance(s, ShipmentState) and s.status == "delivered" for s in items)
    assert cursor == "shp_c"
    rest, end = model.page("acme", {"delivered"}, cursor, 2)
    assert [s.shipment_id for s in rest] == ["shp_d"] and end is None


def test_a_newer_state_replaces_the_kept_one_and_its_status() -> None:
    model = ShipmentReadModel()
    model.apply(folded_shipment("shp_1"))
    model.apply(folded_shipment("shp_1", delivered=True))

    assert len(model) == 1
    assert model.page("acme", {"in_transit"}, None, 10)[0] == []
    served = model.get("acme", "shp_1")
    assert served is not None and served.status == "delivered"


def test_a_record_without_the_indexed_fields_is_refused_naming_the_field() -> None:
    model = ShipmentReadModel()
    with pytest.raises(DecodeError) as err:
        model.apply_json(b'{"shipment_id": "shp_1", "tenant_id": "acme"}')
    assert err.value.field == "$.status"
    with pytest.raises(DecodeError) as bad:
        model.apply_json(b"{not json")
    assert bad.value.reason == "invalid_json"
    assert len(model) == 0


def test_the_follower_callback_skips_other_types_and_broken_records() -> None:
    models = ReadModels(ServiceSettings())
    state = folded_shipment("shp_1")
    raw, headers = ShipmentStateCodec().encode(state.shipment_id, state)
    other = [(k, b"handoff.shipment.update.v1" if k == "ce_type" else v) for k, v in headers]

    models._on_state(_record(None, [], 0, key=b"shp_unknown"))  # a tombstone: nothing kept
    models._on_state(_record(raw, other, 1))  # not a state
    models._on_state(_record(b'{"shipment_id": 1}', headers, 2))  # broken: logged, skipped
    assert len(models.shipments) == 0

    models._on_state(_record(raw, headers, 3))
    assert models.shipments.get("acme", "shp_1") == state


def test_a_tombstone_removes_the_shipment_from_lookups_and_pages() -> None:
    models = ReadModels(ServiceSettings())
    codec = ShipmentStateCodec()
    for sid in ("shp_a", "shp_b", "shp_c"):
        state = folded_shipment(sid, delivered=True)
        raw, headers = codec.encode(sid, state)
        models._on_state(_record(raw, headers, key=sid.encode()))

    models._on_state(_record(None, [], key=b"shp_b"))

    assert models.shipments.get("acme", "shp_b") is None
    items, _ = models.shipments.page("acme", None, None, 10)
    assert [s.shipment_id for s in items] == ["shp_a", "shp_c"]
    assert len(models.shipments) == 2
    # the same shipment written again after its tombstone is kept again, once
    raw, headers = codec.encode("shp_b", folded_shipment("shp_b"))
    models._on_state(_record(raw, headers, key=b"shp_b"))
    items, _ = models.shipments.page("acme", None, None, 10)
    assert [s.shipment_id for s in items] == ["shp_a", "shp_b", "shp_c"]


def test_a_retention_leaves_finished_shipments_out_once_they_aged_out() -> None:
    # The factory's states: delivered at 2026-11-20 09:31, in transit since 08:31 (UTC).
    now = [datetime(2026, 12, 20, 9, 0, tzinfo=UTC)]  # 29 days 23.5 h after the delivery
    model = ShipmentReadModel(retention=timedelta(days=30), clock=lambda: now[0])
    model.apply(folded_shipment("shp_old", delivered=True))
    model.apply(folded_shipment("shp_moving"))  # not finished: kept however old
    assert model.get("acme", "shp_old") is not None and len(model) == 2

    now[0] += timedelta(hours=1)  # the delivery is now 30 days and 30 minutes old
    assert model.sweep() == 1
    assert model.get("acme", "shp_old") is None
    assert [s.shipment_id for s in model.page("acme", None, None, 10)[0]] == ["shp_moving"]
    assert model.sweep() == 0

    # read again from the topic (a restart's catch-up): not kept at all
    model.apply(folded_shipment("shp_old", delivered=True))
    assert model.get("acme", "shp_old") is None and len(model) == 1
    # a newer state of it (a late scan, a return) brings it back
    model.apply(folded_shipment("shp_old"))
    assert model.get("acme", "shp_old") is not None and len(model) == 2


def test_without_a_retention_every_shipment_is_kept() -> None:
    model = ShipmentReadModel(clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
    model.apply(folded_shipment("shp_old", delivered=True))
    assert model.sweep() == 0
    assert model.get("acme", "shp_old") is not None


async def test_the_replica_sweeps_on_its_own_and_the_setting_reaches_it(monkeypatch) -> None:
    settings = TrackingSettings(query_retention_days=30)
    assert settings.query_retention == timedelta(days=30)
    assert TrackingSettings().query_retention is None
    now = [datetime(2026, 12, 20, 9, 0, tzinfo=UTC)]
    models = ReadModels(settings, settings.query_retention, lambda: now[0])
    models.shipments.apply(folded_shipment("shp_old", delivered=True))
    monkeypatch.setattr(read_model, "_SWEEP_EVERY_S", 0.01)
    sweeper = asyncio.create_task(models._sweep_forever())
    await asyncio.sleep(0.05)
    assert len(models.shipments) == 1  # not aged out yet
    now[0] += timedelta(days=1)
    await asyncio.sleep(0.05)
    assert len(models.shipments) == 0
    sweeper.cancel()
