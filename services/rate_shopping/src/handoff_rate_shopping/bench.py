"""Benchmark: pure rating throughput with the sample catalogue (for `make bench`; no assertions)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from handoff_events.contracts import Origin, ShipmentRequested
from handoff_events.values import Address, Parcel

from handoff_rate_shopping.adapters.catalogue_files import load_catalogue
from handoff_rate_shopping.domain.rating import rate_with_cards
from handoff_rate_shopping.domain.transit_history import TransitHistory

_REPO = Path(__file__).resolve().parents[4]
_ORIGINS = (
    Origin(
        location_id="WH-BER-1",
        kind="warehouse",
        postal_code="10317",
        city="Berlin",
        country="DE",
        time_zone="Europe/Berlin",
    ),
    Origin(
        location_id="WH-MUC-1",
        kind="warehouse",
        postal_code="80939",
        city="München",
        country="DE",
        time_zone="Europe/Berlin",
    ),
    Origin(
        location_id="MFC-AMS-1",
        kind="micro_fulfilment",
        postal_code="1043",
        city="Amsterdam",
        country="NL",
        time_zone="Europe/Amsterdam",
    ),
)
_DESTINATIONS = (
    ("DE", "10119"),
    ("DE", "80331"),
    ("DE", "25980"),
    ("NL", "1017"),
    ("NL", "3511"),
    ("DE", "04109"),
)
_LEVELS = ("same_day", "next_day", "two_day", "standard", "pickup_point")


def _shipments(n: int) -> list[ShipmentRequested]:
    start = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
    out = []
    for i in range(n):
        country, postal = _DESTINATIONS[i % len(_DESTINATIONS)]
        moment = start + timedelta(minutes=37 * i)
        out.append(
            ShipmentRequested(
                shipment_id=f"shp_bench_{i}",
                order_id=f"B-{i}",
                requested_at=moment,
                placed_at=moment,
                service_level=_LEVELS[i % len(_LEVELS)],  # type: ignore[arg-type]
                origin=_ORIGINS[i % len(_ORIGINS)],
                destination=Address(
                    name="Bench", line1="Street 1", city="City", postal_code=postal, country=country
                ),
                parcels=[
                    Parcel(
                        parcel_id="P1",
                        weight_g=300 + (i * 97) % 9000,
                        length_mm=200 + i % 300,
                        width_mm=150,
                        height_mm=100,
                    )
                ],
            )
        )
    return out


def bench_quotes_per_second(n: int) -> float:
    """Rate `n` varied shipments with the sample catalogue; returns shipments per second."""
    catalogue = load_catalogue(_REPO / "deploy" / "config" / "carriers")
    shipments = _shipments(n)
    history = TransitHistory()
    rate_with_cards(catalogue, shipments[0], history)  # warm the holiday cache
    started = time.perf_counter()
    for shipment in shipments:
        rate_with_cards(catalogue, shipment, history)
    elapsed = time.perf_counter() - started
    return n / elapsed if elapsed > 0 else float("inf")


if __name__ == "__main__":
    print(f"{bench_quotes_per_second(2000):.0f} shipments rated per second")
