"""Carrier scorecards from KPI snapshots, and service health from Prometheus scrapes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from handoff_control_tower.domain.scorecards import KpiBook, score
from handoff_control_tower.domain.services import (
    ServiceHistory,
    increase,
    parse_scrape,
    parse_service_urls,
)
from handoff_events.contracts import KpiSnapshot
from handoff_events.values import Money

T = datetime(2026, 11, 20, 23, 0, tzinfo=UTC)


def snap(
    carrier: str,
    lane: str,
    day: date,
    delivered: int,
    on_time: int,
    first: int,
    cost: int | None,
    hours: float,
    with_promise: int | None = None,
    currency: str = "EUR",
) -> KpiSnapshot:
    return KpiSnapshot(
        kpi_key=f"{carrier}/{lane}/acme/{day}",
        carrier=carrier,
        lane=lane,
        tenant_id="acme",
        day=day,
        shipments_delivered=delivered,
        delivered_on_time=on_time,
        first_attempt_deliveries=first,
        exceptions=1,
        transit_hours_sum=hours,
        transit_hours_p90=None,
        cost_total=None if cost is None else Money(amount=cost, currency=currency),
        computed_at=T,
        shipments_with_promise=with_promise,
    )


def test_a_carrier_scorecard_sums_its_buckets() -> None:
    d = date(2026, 11, 20)
    (card,) = score(
        [
            snap("swift", "L1", d, 10, 9, 8, 9200, 200.0, with_promise=10),
            snap("swift", "L2", d, 5, 3, 5, 4601, 100.0, with_promise=4),
        ]
    )
    assert card.shipments_delivered == 15
    assert card.on_time_rate == pytest.approx(12 / 14)
    assert card.first_attempt_rate == pytest.approx(13 / 15)
    assert card.average_transit_hours == pytest.approx(20.0)
    # 13801 / 15 = 920.07 → 920 minor units, an integer
    assert card.cost_per_delivery_minor() == {"EUR": 920}
    assert (card.lanes, card.days) == (2, 1)


def test_cost_per_delivery_rounds_half_up_and_keeps_currencies_apart() -> None:
    d = date(2026, 11, 20)
    (card,) = score(
        [
            snap("swift", "L1", d, 2, 2, 2, 1001, 1.0),
            snap("swift", "L2", d, 0, 0, 0, 500, 0.0, currency="CHF"),
        ]
    )
    assert card.cost_per_delivery_minor() == {"CHF": 250, "EUR": 501}


def test_without_a_promise_count_every_delivery_is_the_denominator() -> None:
    (card,) = score([snap("nordpost", "L1", date(2026, 11, 20), 4, 3, 4, None, 8.0)])
    assert card.on_time_rate == pytest.approx(0.75)
    assert card.cost_per_delivery_minor() == {}


def test_empty_carriers_have_no_rates_and_since_filters_days() -> None:
    old, new = date(2026, 11, 1), date(2026, 11, 20)
    cards = score(
        [
            snap("swift", "L1", old, 10, 10, 10, 100, 1.0),
            snap("nordpost", "L1", new, 0, 0, 0, None, 0.0),
        ],
        since=new,
    )
    assert [c.carrier for c in cards] == ["nordpost"]
    assert cards[0].on_time_rate is None and cards[0].first_attempt_rate is None


def test_the_book_keeps_the_latest_snapshot_per_bucket() -> None:
    book = KpiBook()
    d = date(2026, 11, 20)
    book.apply(snap("swift", "L1", d, 10, 10, 10, 100, 1.0))
    book.apply(snap("swift", "L1", d, 12, 11, 10, 120, 1.0))
    assert [c.shipments_delivered for c in book.scorecards()] == [12]
    book.remove("swift/L1/acme/2026-11-20")
    assert book.scorecards() == []


EXPOSITION = """\
# HELP handoff_records_processed_total Input records handled by a stream stage
# TYPE handoff_records_processed_total counter
handoff_records_processed_total{service="tracking",stage="fold",topic="a"} 100.0
handoff_records_processed_total{service="tracking",stage="kpis",topic="b"} 50.0
# TYPE handoff_consumer_lag gauge
handoff_consumer_lag{service="tracking",stage="fold",topic="a",partition="0"} 7.0
handoff_consumer_lag{service="tracking",stage="fold",topic="a",partition="1"} 3.0
handoff_consumer_lag{service="tracking",stage="kpis",topic="b",partition="0"} 1.0
# TYPE handoff_dlq_records_total counter
handoff_dlq_records_total{service="tracking",stage="fold",topic="a",reason="schema_violation"} 2.0
# TYPE handoff_batch_seconds histogram
handoff_batch_seconds_bucket{service="tracking",stage="fold",le="+Inf"} 4.0
handoff_batch_seconds_count{service="tracking",stage="fold"} 4.0
handoff_batch_seconds_sum{service="tracking",stage="fold"} 0.2
# TYPE handoff_ready gauge
handoff_ready{service="tracking"} 1.0
"""


def test_a_scrape_sums_the_series_the_tower_shows() -> None:
    s = parse_scrape(EXPOSITION)
    assert s.records_total == 150
    assert s.lag_by_stage == {"fold": 10, "kpis": 1}
    assert s.lag_total == 11
    assert s.dlq_total == 2
    assert (s.batch_count, s.batch_seconds_sum, s.ready) == (4, 0.2, True)


def test_rates_come_from_successive_scrapes_and_survive_restarts() -> None:
    h = ServiceHistory(name="tracking", url="http://x", max_points=3)
    h.observe(parse_scrape(EXPOSITION), T)
    assert h.records_per_s == 0.0  # one sample is no rate
    bumped = (
        EXPOSITION.replace('topic="a"} 100.0', 'topic="a"} 120.0')
        .replace(
            '_count{service="tracking",stage="fold"} 4.0',
            '_count{service="tracking",stage="fold"} 6.0',
        )
        .replace(
            '_sum{service="tracking",stage="fold"} 0.2', '_sum{service="tracking",stage="fold"} 0.3'
        )
    )
    h.observe(parse_scrape(bumped), T + timedelta(seconds=2))
    assert h.records_per_s == pytest.approx(10.0)
    assert h.batch_ms == pytest.approx(50.0)
    assert increase(170.0, 30.0) == 30.0  # a restart: counting from zero again
    h.failed("ConnectError", T + timedelta(seconds=4))
    assert not h.up and h.records_per_s == 0.0
    for i in range(5):
        h.observe(parse_scrape(EXPOSITION), T + timedelta(seconds=6 + i))
    assert len(h.points) == 3


def test_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        parse_scrape("handoff_records_processed_total{ 12 nonsense\n")


def test_service_urls() -> None:
    defaults = {"tracking": "http://127.0.0.1:8084"}
    assert parse_service_urls("", defaults) == defaults
    assert parse_service_urls(" tracking=http://t:1/ , returns=https://r:2", defaults) == {
        "tracking": "http://t:1",
        "returns": "https://r:2",
    }
    with pytest.raises(ValueError, match="returns"):
        parse_service_urls("returns", defaults)
