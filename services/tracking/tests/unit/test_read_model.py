"""The query read model keeps each state as its record's JSON and decodes it per request."""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord
from handoff_events.contracts import ShipmentState
from handoff_events.envelope import DecodeError
from handoff_events.runtime.settings import ServiceSettings
from handoff_tracking.adapters.read_model import ReadModels, ShipmentReadModel
from handoff_tracking.adapters.state_codec import ShipmentStateCodec

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
    assert kept[0] is raw and kept[1:] == ("acme", "delivered")  # the bytes, not an object
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
