"""Store values survive the changelog codec unchanged (restore rebuilds them from it)."""

from __future__ import annotations

from datetime import timedelta

from handoff_events.contracts import ReturnItem
from handoff_events.stream.api import MsgpackCodec
from handoff_events.values import Money
from handoff_returns.domain import ledger
from handoff_returns.domain.requests import IndexedShipment, OrderIndex

from services.returns.tests.factories import T0, shipment_requested, update


def test_shipment_record_round_trips_through_the_changelog_codec() -> None:
    record = ledger.record_shipment(ledger.EMPTY, "acme", shipment_requested())
    record = ledger.record_update(record, update("shp_x", "delivered", "delivered", T0))
    record = ledger.ShipmentRecord(
        **{f: getattr(record, f) for f in record.__struct_fields__ if f not in ("rmas", "link")},
        rmas=[
            ledger.IssuedRma(
                rma_id="rma_1", return_request_id="R-1", return_shipment_id="shp_r", skus=["SKU-1"]
            )
        ],
        link=ledger.ReturnLink(
            tenant_id="acme",
            rma_id="rma_1",
            return_request_id="R-1",
            order_id="A-1001",
            original_shipment_id="shp_x",
            items=[ReturnItem(sku="SKU-1", quantity=2, parcel_id="P1")],
            reason_code="changed_mind",
            label_valid_until=T0 + timedelta(days=10),
            free_of_charge=False,
            fee=Money(amount=395, currency="EUR"),
            caused_by="evt-1",
        ),
    )
    codec = MsgpackCodec(ledger.ShipmentRecord)
    raw, headers = codec.encode("shp_x", record)
    restored = codec.decode(raw, headers)
    assert restored == record
    assert restored.delivered_at is not None and restored.delivered_at.utcoffset() is not None


def test_order_index_round_trips_through_the_changelog_codec() -> None:
    index = OrderIndex().with_shipment(
        IndexedShipment(shipment_id="shp_a", origin_location_id="WH-BER-1", skus=["SKU-1"])
    )
    index = index.with_routed("R-1", "shp_a")
    codec = MsgpackCodec(OrderIndex)
    assert codec.decode(*codec.encode("acme/A-1", index)) == index
