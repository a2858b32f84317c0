"""Observed transit times: the distribution, de-duplication, and their effect on quotes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta, timezone

from handoff_events.contracts import Quote, ShipmentRequested, ShipmentUpdate
from handoff_rate_shopping.adapters.history_feed import feed, observation_of
from handoff_rate_shopping.domain.catalogue import Catalogue
from handoff_rate_shopping.domain.rating import rate_with_cards
from handoff_rate_shopping.domain.transit_history import TransitDistribution, TransitHistory

CET = timezone(timedelta(hours=1))
LANE = "DE-10>DE-10"


def test_nearest_rank_quantiles_and_shares() -> None:
    dist = TransitDistribution.of([30.0, 10.0, 20.0, 40.0])
    assert dist.quantile(0.5) == 20.0  # rank ceil(0.5 × 4) = 2
    assert dist.quantile(0.9) == 40.0  # rank ceil(0.9 × 4) = 4
    assert dist.quantile(0.25) == 10.0
    assert dist.share_within(25.0) == 0.5
    assert dist.share_within(40.0) == 1.0


def test_duplicates_count_once_and_the_window_is_bounded() -> None:
    history = TransitHistory(max_per_lane=3, min_observations=2)
    assert history.observe("swift", "express", LANE, 20.0, "shp_1")
    assert not history.observe("swift", "express", LANE, 20.0, "shp_1")
    assert history.distribution("swift", "express", LANE) is None  # 1 < min_observations
    assert not history.observe("swift", "express", LANE, -1.0, "shp_neg")
    for i, hours in enumerate([21.0, 22.0, 99.0], start=2):
        history.observe("swift", "express", LANE, hours, f"shp_{i}")
    dist = history.distribution("swift", "express", LANE)
    assert dist is not None
    assert dist.hours == (21.0, 22.0, 99.0)  # shp_1 fell out of the window
    assert history.observe("swift", "express", LANE, 20.0, "shp_1")  # ...so it may come back


def _delivered(shipment_id: str, hours: float, **overrides: object) -> ShipmentUpdate:
    picked = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    fields: dict[str, object] = {
        "update_id": f"upd_{shipment_id}",
        "shipment_id": shipment_id,
        "order_id": "A-1",
        "tenant_id": "acme",
        "milestone": "delivered",
        "status": "delivered",
        "occurred_at": picked + timedelta(hours=hours),
        "carrier": "swift",
        "service": "express",
        "lane": LANE,
        "picked_up_at": picked,
        "delivered_at": picked + timedelta(hours=hours),
    }
    fields.update(overrides)
    return ShipmentUpdate(**fields)  # type: ignore[arg-type]


def test_only_complete_delivered_updates_are_observations() -> None:
    observed = observation_of(_delivered("shp_1", 20.5))
    assert observed is not None
    assert (observed.carrier, observed.service, observed.lane, observed.transit_hours) == (
        "swift",
        "express",
        LANE,
        20.5,
    )
    assert observation_of(_delivered("shp_2", 20, milestone="status_changed")) is None
    assert observation_of(_delivered("shp_3", 20, lane=None)) is None
    assert observation_of(_delivered("shp_4", 20, picked_up_at=None)) is None


def test_history_changes_the_quote(
    catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    # Requested Mon 2026-11-23 10:00 Berlin; cut-off min(origin 17:00, Swift hub 19:00) = 17:00,
    # so the parcel is picked up Mon 17:00 CET. Promise: Tue 18:00 CET → 25 hours allowed.
    shipment = shipment_factory(
        service_level="next_day",
        requested_at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
        promised_by=datetime(2026, 11, 24, 18, 0, tzinfo=CET),
    )
    history = TransitHistory(min_observations=20)
    before = _express(rate_with_cards(catalogue, shipment, history).quotes)
    # Advertised: 1 business day → Tue 24, delivered by 18:00 ≤ promise → default next_day rate 0.92
    assert (before.transit_basis, before.on_time_probability) == ("advertised", 0.92)
    assert before.p50_delivery_date is None

    # 15 deliveries took 20 h, 5 took 45 h
    for i in range(20):
        feed(history, _delivered(f"shp_{i}", 20.0 if i < 15 else 45.0))
    after = _express(rate_with_cards(catalogue, shipment, history).quotes)
    assert after.transit_basis == "observed"
    assert after.on_time_probability == 0.75  # 15 of 20 within 25 h
    # p50: rank 10 → 20 h → Tue 13:00 → 2026-11-24; p90: rank 18 → 45 h → Wed 14:00 → 2026-11-25
    assert after.p50_delivery_date == date(2026, 11, 24)
    assert after.p90_delivery_date == date(2026, 11, 25)
    assert (
        after.estimated_delivery_date == before.estimated_delivery_date
    )  # advertised date unchanged


def _express(quotes: tuple[Quote, ...]) -> Quote:
    found = [q for q in quotes if (q.carrier, q.service) == ("swift", "express")]
    assert len(found) == 1
    return found[0]
