"""The return policy: window edges in the customer's time zone, items, reasons, fees."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from handoff_events.values import Money
from handoff_returns.domain.policy import ShipmentFacts, assess, terms, window_closes_at
from hypothesis import given
from hypothesis import strategies as st

from services.returns.tests.factories import policy, return_requested

BERLIN = ZoneInfo("Europe/Berlin")
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def facts(delivered_at: datetime | None, country: str = "DE", **kw: object) -> ShipmentFacts:
    values: dict[str, object] = {
        "tenant_id": "acme",
        "order_id": "A-1001",
        "skus": frozenset({"SKU-1", "SKU-2", "GIFT-CARD-50", "FOOD-CHOC"}),
        "delivered_at": delivered_at,
        "customer_country": country,
    }
    values.update(kw)
    return ShipmentFacts(**values)  # type: ignore[arg-type]


def codes(reasons: list) -> list[str]:  # type: ignore[type-arg]
    return [r.code for r in reasons]


# ---- the window --------------------------------------------------------------------------


def test_window_delivered_late_evening_closes_at_local_end_of_day_14() -> None:
    delivered = datetime(2026, 3, 2, 23, 30, tzinfo=BERLIN)  # day 0, 23:30 local
    closes = window_closes_at(delivered, 14, BERLIN)
    assert closes == datetime(2026, 3, 16, 23, 59, 59, 999_999, tzinfo=BERLIN)


def test_request_at_last_local_second_is_in_and_first_second_of_next_day_is_out() -> None:
    delivered = datetime(2026, 3, 2, 23, 30, tzinfo=BERLIN).astimezone(UTC)
    last_second = datetime(2026, 3, 16, 23, 59, 59, tzinfo=BERLIN)
    next_day = datetime(2026, 3, 17, 0, 0, 0, tzinfo=BERLIN)
    inside = assess(policy(), return_requested(at=last_second.astimezone(UTC)), facts(delivered))
    outside = assess(policy(), return_requested(at=next_day), facts(delivered))
    assert inside == []
    assert codes(outside) == ["outside_return_window"]
    assert outside[0].field == "$.requested_at"


def test_window_is_counted_in_the_customers_zone_not_utc() -> None:
    # 00:30 in Berlin on 1 Dec is still 30 Nov in UTC: counted in UTC the window would
    # end a day early. The customer's local day is what counts.
    delivered = datetime(2026, 12, 1, 0, 30, tzinfo=BERLIN)
    on_local_last_day = datetime(2026, 12, 15, 12, 0, tzinfo=BERLIN)
    assert delivered.astimezone(UTC).day == 30
    assert assess(policy(), return_requested(at=on_local_last_day), facts(delivered)) == []


def test_window_uses_the_customers_country_zone() -> None:
    # The same instant is a different local day for a customer in another zone.
    zones = {"DE": "Europe/Berlin", "PT": "Europe/Lisbon"}
    pol = policy(customer_time_zones=zones, return_centres={"*": "RC-DE-1"})
    delivered = datetime(2026, 6, 1, 23, 30, tzinfo=UTC)  # 2 Jun 00:30 in Lisbon
    delivered_lisbon = datetime(2026, 6, 1, 22, 30, tzinfo=UTC)  # 1 Jun 23:30 in Lisbon
    request_at = datetime(2026, 6, 16, 10, 0, tzinfo=ZoneInfo("Europe/Lisbon"))
    assert assess(pol, return_requested(at=request_at), facts(delivered, country="PT")) == []
    late = assess(pol, return_requested(at=request_at), facts(delivered_lisbon, country="PT"))
    assert codes(late) == ["outside_return_window"]


def test_window_spanning_the_dst_change_ends_at_local_midnight() -> None:
    delivered = datetime(2026, 10, 20, 10, 0, tzinfo=AMSTERDAM)  # CEST, DST ends 25 Oct
    closes = window_closes_at(delivered, 14, AMSTERDAM)
    assert closes.utcoffset() == timedelta(hours=1)
    assert closes.astimezone(UTC) == datetime(2026, 11, 3, 22, 59, 59, 999_999, tzinfo=UTC)


@given(
    delivered=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
    ),
    days=st.integers(min_value=0, max_value=90),
)
def test_window_always_closes_on_the_local_day_n_days_after_delivery(
    delivered: datetime, days: int
) -> None:
    closes = window_closes_at(delivered, days, BERLIN)
    local = closes.astimezone(BERLIN)
    assert local.date() == delivered.astimezone(BERLIN).date() + timedelta(days=days)
    assert (local.hour, local.minute, local.second) == (23, 59, 59)
    assert closes >= delivered


def test_never_delivered_is_refused_with_the_reason() -> None:
    assert codes(assess(policy(), return_requested(), facts(None))) == ["not_delivered"]


# ---- items, reasons, methods ------------------------------------------------------------


def test_non_returnable_items_are_named_by_their_index() -> None:
    delivered = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    request = return_requested(skus=("SKU-1", "GIFT-CARD-50", "FOOD-CHOC"), at=delivered)
    reasons = assess(policy(), request, facts(delivered))
    assert [(r.code, r.field, r.value) for r in reasons] == [
        ("item_not_returnable", "$.items[1].sku", "GIFT-CARD-50"),
        ("item_not_returnable", "$.items[2].sku", "FOOD-CHOC"),
    ]


def test_item_not_in_the_shipment_is_refused() -> None:
    delivered = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    reasons = assess(policy(), return_requested(skus=("SKU-9",), at=delivered), facts(delivered))
    assert codes(reasons) == ["item_not_in_shipment"]


def test_item_already_under_an_rma_is_refused_as_already_returned() -> None:
    delivered = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    shipment = facts(delivered, skus_under_return=frozenset({"SKU-1"}))
    assert codes(assess(policy(), return_requested(at=delivered), shipment)) == ["already_returned"]
    other = return_requested(skus=("SKU-2",), at=delivered)
    assert assess(policy(), other, shipment) == []


def test_ineligible_reason_and_method_are_both_reported() -> None:
    delivered = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    pol = policy(methods=frozenset({"drop_off"}))
    request = return_requested(reason="too_late", method="home_pickup", at=delivered)
    assert codes(assess(pol, request, facts(delivered))) == [
        "reason_not_eligible",
        "method_not_offered",
    ]


def test_country_without_return_centre_is_refused() -> None:
    delivered = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    reasons = assess(policy(), return_requested(at=delivered), facts(delivered, country="FR"))
    assert codes(reasons) == ["no_return_centre"]


def test_request_for_a_shipment_of_another_order_is_refused() -> None:
    delivered = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
    reasons = assess(policy(), return_requested(order_id="B-2", at=delivered), facts(delivered))
    assert codes(reasons) == ["shipment_not_in_order"]


# ---- terms --------------------------------------------------------------------------------


def test_charged_reason_carries_its_fee_in_minor_units() -> None:
    now = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
    charged = terms(policy(), "changed_mind", "DE", now)
    assert charged.fee == Money(amount=395, currency="EUR")
    assert not charged.free_of_charge
    assert charged.policy_outcome == "charged_return:changed_mind"


def test_reason_without_fee_is_free_and_label_validity_counts_from_authorisation() -> None:
    now = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
    free = terms(policy(), "damaged", "NL", now)
    assert free.free_of_charge and free.fee is None
    assert free.policy_outcome == "free_return"
    assert free.label_valid_until == now + timedelta(days=10)
    assert free.return_centre_id == "RC-NL-1"


def test_zero_fee_counts_as_free() -> None:
    pol = policy(fees={"changed_mind": Money(amount=0, currency="EUR")})
    assert terms(pol, "changed_mind", "DE", datetime(2026, 3, 5, tzinfo=UTC)).free_of_charge
