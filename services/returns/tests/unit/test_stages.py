"""Both stages end to end on a fake context: routing, authorisation, reverse shipment,
completion, duplicates, expiry, back-links. No broker."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
import pytest
from handoff_events import topics
from handoff_events.contracts import (
    RefundEligible,
    ReturnAuthorised,
    ReturnExpired,
    ReturnReceived,
    ReturnRefused,
    ReturnRequested,
    ReturnShipmentLinked,
    ShipmentIndexed,
    ShipmentRequested,
)
from handoff_events.ids import return_shipment_id, shipment_id
from handoff_events.stream.api import Emit, Rejected
from handoff_returns.domain.ledger import ShipmentRecord
from handoff_returns.domain.requests import OrderIndex, rma_id
from handoff_returns.handlers import LedgerStage, handle_requests

from services.returns.tests.factories import (
    CENTRES,
    T0,
    FakeContext,
    customer,
    policy,
    return_requested,
    shipment_requested,
    update,
    update_type,
    wrap,
)

SHP = shipment_id("acme", "A-1001", "WH-BER-1")


def stage(**policy_overrides: Any) -> LedgerStage:
    return LedgerStage(policies={"acme": policy(**policy_overrides)}, centres=CENTRES)


def feed(ledger: LedgerStage, ctx: FakeContext[ShipmentRecord], data: Any, **kw: Any) -> list[Emit]:
    env = wrap(data, **kw)
    ledger.handle(env, ctx)  # type: ignore[arg-type]
    return ctx.take()


def delivered_shipment(ledger: LedgerStage, ctx: FakeContext[ShipmentRecord]) -> None:
    feed(ledger, ctx, shipment_requested())
    upd = update(SHP, "delivered", "delivered", T0)
    feed(ledger, ctx, upd, type=update_type(upd))


def rekeyed(**kw: Any) -> ReturnRequested:
    kw.setdefault("shipment_id", SHP)
    return return_requested(**kw)


def of(emits: list[Emit], cls: type) -> list[Any]:
    return [e.envelope.data for e in emits if isinstance(e.envelope.data, cls)]


# ---- stage "requests" -------------------------------------------------------------------


def test_request_is_routed_to_the_orders_only_shipment_and_rekeyed() -> None:
    ctx: FakeContext[OrderIndex] = FakeContext()
    index = ShipmentIndexed(
        order_id="A-1001",
        shipment_id=SHP,
        origin_location_id="WH-BER-1",
        skus=["SKU-1"],
        indexed_at=T0,
    )
    handle_requests(wrap(index), ctx)  # type: ignore[arg-type]
    handle_requests(wrap(return_requested(), ce_id="evt-r1"), ctx)  # type: ignore[arg-type]
    [out] = ctx.take()
    assert (out.topic, out.key) == (topics.RETURN_REQUESTS_BY_SHIPMENT, SHP)
    assert out.envelope.data.shipment_id == SHP
    assert out.envelope.tenant_id == "acme"


def test_duplicate_request_is_not_routed_twice() -> None:
    ctx: FakeContext[OrderIndex] = FakeContext()
    handle_requests(wrap(return_requested(shipment_id=SHP)), ctx)  # type: ignore[arg-type]
    handle_requests(wrap(return_requested(shipment_id=SHP)), ctx)  # type: ignore[arg-type]
    assert len(ctx.take()) == 1


def test_request_for_an_unknown_order_without_shipment_id_is_rejected_naming_the_field() -> None:
    ctx: FakeContext[OrderIndex] = FakeContext()
    with pytest.raises(Rejected) as err:
        handle_requests(wrap(return_requested()), ctx)  # type: ignore[arg-type]
    assert (err.value.reason, err.value.field) == ("unknown_order", "$.order_id")


def test_multi_origin_order_routes_by_sku_or_asks_for_shipment_id() -> None:
    ctx: FakeContext[OrderIndex] = FakeContext()
    for origin, sku in (("WH-BER-1", "SKU-1"), ("WH-MUC-1", "SKU-2")):
        index = ShipmentIndexed(
            order_id="A-1001",
            shipment_id=shipment_id("acme", "A-1001", origin),
            origin_location_id=origin,
            skus=[sku],
            indexed_at=T0,
        )
        handle_requests(wrap(index), ctx)  # type: ignore[arg-type]
    handle_requests(wrap(return_requested(request_id="R-a", skus=("SKU-2",))), ctx)  # type: ignore[arg-type]
    [out] = ctx.take()
    assert out.key == shipment_id("acme", "A-1001", "WH-MUC-1")
    with pytest.raises(Rejected) as err:
        both = return_requested(request_id="R-b", skus=("SKU-1", "SKU-2"))
        handle_requests(wrap(both), ctx)  # type: ignore[arg-type]
    assert (err.value.reason, err.value.field) == ("shipment_id_required", "$.shipment_id")


def test_request_with_repeated_sku_is_rejected() -> None:
    ctx: FakeContext[OrderIndex] = FakeContext()
    with pytest.raises(Rejected) as err:
        handle_requests(wrap(return_requested(skus=("SKU-1", "SKU-1"), shipment_id=SHP)), ctx)  # type: ignore[arg-type]
    assert err.value.field == "$.items[1].sku"


# ---- stage "ledger" ---------------------------------------------------------------------


def test_shipment_is_indexed_by_order_once() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    [out] = feed(ledger, ctx, shipment_requested())
    assert (out.topic, out.key) == (topics.RETURN_ORDER_SHIPMENTS, "acme/A-1001")
    assert feed(ledger, ctx, shipment_requested()) == []


def test_authorised_return_emits_rma_reverse_shipment_and_link() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    delivered_shipment(ledger, ctx)
    ctx.now = T0 + timedelta(days=2)
    emits = feed(ledger, ctx, rekeyed(reason="changed_mind"))
    rma = rma_id("acme", "R-1")
    reverse_id = return_shipment_id("acme", rma)
    assert [(e.topic, e.key) for e in emits] == [
        (topics.RETURNS, SHP),
        (topics.RETURN_SHIPMENTS, reverse_id),
        (topics.RETURN_REQUESTS_BY_SHIPMENT, reverse_id),
    ]
    [auth] = of(emits, ReturnAuthorised)
    assert auth.rma_id == rma and auth.shipment_id == SHP
    assert auth.fee is not None and auth.fee.amount == 395 and not auth.free_of_charge
    assert auth.label_valid_until == ctx.now + timedelta(days=10)
    [reverse] = of(emits, ShipmentRequested)
    assert reverse.is_return and reverse.return_of_shipment_id == SHP and reverse.rma_id == rma
    assert reverse.origin.kind == "customer" and reverse.origin.postal_code == "10119"
    assert reverse.origin.time_zone == "Europe/Berlin"
    assert reverse.destination.postal_code == "34123"  # RC-DE-1 for a German customer
    assert reverse.skus == ["SKU-1"] and reverse.return_method == "drop_off"
    assert reverse.parcels and reverse.parcels[0].parcel_id == "P1"


def test_pickup_address_in_the_netherlands_goes_to_the_dutch_centre() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    delivered_shipment(ledger, ctx)
    request = msgspec.structs.replace(rekeyed(), pickup_address=customer("NL"))
    [reverse] = of(feed(ledger, ctx, request), ShipmentRequested)
    assert reverse.destination.city == "Tilburg" and reverse.origin.country == "NL"


def test_duplicate_request_yields_one_rma_and_no_second_event() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    delivered_shipment(ledger, ctx)
    first = feed(ledger, ctx, rekeyed(), ce_id="evt-1")
    again = feed(ledger, ctx, rekeyed(), ce_id="evt-2")
    assert len(of(first, ReturnAuthorised)) == 1
    assert again == []
    record = ctx.store.get(SHP)
    assert record is not None and len(record.rmas) == 1


def test_second_request_for_the_same_item_is_refused_as_already_returned() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    delivered_shipment(ledger, ctx)
    feed(ledger, ctx, rekeyed(request_id="R-1"))
    [refused] = of(feed(ledger, ctx, rekeyed(request_id="R-2")), ReturnRefused)
    assert [r.code for r in refused.reasons] == ["already_returned"]


def test_return_of_an_undelivered_shipment_is_refused() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    feed(ledger, ctx, shipment_requested())
    emits = feed(ledger, ctx, rekeyed())
    [refused] = of(emits, ReturnRefused)
    assert [r.code for r in refused.reasons] == ["not_delivered"]
    assert [(e.topic, e.key) for e in emits] == [(topics.RETURNS, SHP)]


def test_another_tenants_shipment_is_never_answered() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    delivered_shipment(ledger, ctx)
    with pytest.raises(Rejected):
        feed(ledger, ctx, rekeyed(), tenant="globex")


def _authorise(ledger: LedgerStage, ctx: FakeContext[ShipmentRecord]) -> ReturnShipmentLinked:
    delivered_shipment(ledger, ctx)
    emits = feed(ledger, ctx, rekeyed())
    [link] = of(emits, ReturnShipmentLinked)
    return link  # type: ignore[no-any-return]


def test_reverse_shipment_delivered_reports_received_then_refund_eligible() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    link = _authorise(ledger, ctx)
    assert feed(ledger, ctx, link, ce_id="evt-link") == []
    rs = link.return_shipment_id
    picked = update(rs, "status_changed", "picked_up", T0 + timedelta(days=3), is_return=True)
    assert feed(ledger, ctx, picked, type=update_type(picked)) == []
    done = update(rs, "delivered", "delivered", T0 + timedelta(days=5), is_return=True)
    emits = feed(ledger, ctx, done, type=update_type(done))
    assert [type(e.envelope.data) for e in emits] == [ReturnReceived, RefundEligible]
    assert {e.key for e in emits} == {SHP}
    received, eligible = (e.envelope.data for e in emits)
    assert received.received_at == T0 + timedelta(days=5)
    assert eligible.policy_outcome == "free_return" and eligible.items == link.items
    # a duplicate delivered update reports nothing twice
    assert feed(ledger, ctx, done, type=update_type(done)) == []
    # the back-link marks the RMA received on the original shipment's record
    feed(ledger, ctx, received)
    record = ctx.store.get(SHP)
    assert record is not None and record.rmas[0].status == "received"


def test_delivered_update_before_the_link_still_completes_once_the_link_arrives() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    link = _authorise(ledger, ctx)
    done = update(link.return_shipment_id, "delivered", "delivered", T0, is_return=True)
    assert feed(ledger, ctx, done, type=update_type(done)) == []
    emits = feed(ledger, ctx, link)
    assert [type(e.envelope.data) for e in emits] == [ReturnReceived, RefundEligible]


def test_unused_label_expires_and_frees_the_items_for_a_new_request() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    link = _authorise(ledger, ctx)
    feed(ledger, ctx, link)
    ctx.now = link.label_valid_until - timedelta(seconds=1)
    ledger.expire(ctx)  # type: ignore[arg-type]
    assert ctx.take() == []
    ctx.now = link.label_valid_until
    ledger.expire(ctx)  # type: ignore[arg-type]
    [out] = ctx.take()
    assert out.key == SHP and isinstance(out.envelope.data, ReturnExpired)
    ledger.expire(ctx)  # type: ignore[arg-type]
    assert ctx.take() == []
    feed(ledger, ctx, out.envelope.data)  # back-link: the RMA expired
    again = feed(ledger, ctx, rekeyed(request_id="R-2", at=T0 + timedelta(days=3)))
    assert len(of(again, ReturnAuthorised)) == 1


def test_label_used_in_time_never_expires() -> None:
    ledger, ctx = stage(), FakeContext[ShipmentRecord]()
    link = _authorise(ledger, ctx)
    feed(ledger, ctx, link)
    picked = update(link.return_shipment_id, "status_changed", "picked_up", T0, is_return=True)
    feed(ledger, ctx, picked, type=update_type(picked))
    ctx.now = link.label_valid_until + timedelta(days=30)
    ledger.expire(ctx)  # type: ignore[arg-type]
    assert ctx.take() == []


def test_emitted_ids_are_deterministic_for_a_replayed_input() -> None:
    first_ledger, first = stage(), FakeContext[ShipmentRecord]()
    second_ledger, second = stage(), FakeContext[ShipmentRecord]()
    for ledger, ctx in ((first_ledger, first), (second_ledger, second)):
        delivered_shipment(ledger, ctx)
    a = feed(first_ledger, first, rekeyed(), ce_id="evt-same")
    b = feed(second_ledger, second, rekeyed(), ce_id="evt-same")
    assert [e.envelope.id for e in a] == [e.envelope.id for e in b]
    assert len({e.envelope.id for e in a}) == 3
