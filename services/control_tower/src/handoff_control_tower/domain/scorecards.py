"""Carrier scorecards (pure): KPI snapshots aggregated per carrier.

`handoff.tracking.kpis.v1` is compacted with one snapshot per (carrier, lane,
tenant, day); the latest snapshot of a bucket replaces the previous one. A
carrier's scorecard sums its buckets (optionally only days from `since`):

* on-time rate = delivered on time / delivered shipments that had a promise
  (older snapshots without `shipments_with_promise` count every delivery);
* first-attempt success = first-attempt deliveries / deliveries;
* cost per delivery = total cost / deliveries, per currency, in integer minor
  units (rounded half up) -- money never becomes a float;
* average transit = transit hours / deliveries.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from handoff_events.contracts import KpiSnapshot


@dataclass(frozen=True, slots=True)
class Scorecard:
    carrier: str
    shipments_delivered: int
    delivered_on_time: int
    shipments_with_promise: int
    first_attempt_deliveries: int
    exceptions: int
    lanes: int
    days: int
    cost_total_minor: dict[str, int]
    transit_hours_sum: float

    @property
    def on_time_rate(self) -> float | None:
        if self.shipments_with_promise == 0:
            return None
        return self.delivered_on_time / self.shipments_with_promise

    @property
    def first_attempt_rate(self) -> float | None:
        if self.shipments_delivered == 0:
            return None
        return self.first_attempt_deliveries / self.shipments_delivered

    @property
    def exception_rate(self) -> float | None:
        if self.shipments_delivered == 0:
            return None
        return self.exceptions / self.shipments_delivered

    @property
    def average_transit_hours(self) -> float | None:
        if self.shipments_delivered == 0:
            return None
        return self.transit_hours_sum / self.shipments_delivered

    def cost_per_delivery_minor(self) -> dict[str, int]:
        """Per currency, total / deliveries rounded half up (integer minor units)."""
        n = self.shipments_delivered
        if n == 0:
            return {}
        return {
            cur: (total * 2 + n) // (2 * n) for cur, total in sorted(self.cost_total_minor.items())
        }


class KpiBook:
    """Latest KPI snapshot per bucket (`kpi_key`), as the compacted topic keeps it."""

    def __init__(self) -> None:
        self._snapshots: dict[str, KpiSnapshot] = {}

    def apply(self, snapshot: KpiSnapshot) -> None:
        self._snapshots[snapshot.kpi_key] = snapshot

    def remove(self, kpi_key: str) -> None:
        self._snapshots.pop(kpi_key, None)

    def __len__(self) -> int:
        return len(self._snapshots)

    def scorecards(self, since: date | None = None) -> list[Scorecard]:
        """One scorecard per carrier, busiest first."""
        return score(self._snapshots.values(), since)


def score(snapshots: Iterable[KpiSnapshot], since: date | None = None) -> list[Scorecard]:
    """Aggregate snapshots into per-carrier scorecards."""
    totals: dict[str, dict[str, int]] = {}
    costs: dict[str, dict[str, int]] = {}
    transit: dict[str, float] = {}
    lanes: dict[str, set[str]] = {}
    days: dict[str, set[date]] = {}
    for snap in snapshots:
        if since is not None and snap.day < since:
            continue
        t = totals.setdefault(
            snap.carrier,
            {"delivered": 0, "on_time": 0, "with_promise": 0, "first": 0, "exceptions": 0},
        )
        t["delivered"] += snap.shipments_delivered
        t["on_time"] += snap.delivered_on_time
        with_promise = snap.shipments_with_promise
        t["with_promise"] += snap.shipments_delivered if with_promise is None else with_promise
        t["first"] += snap.first_attempt_deliveries
        t["exceptions"] += snap.exceptions
        if snap.cost_total is not None:
            per_currency = costs.setdefault(snap.carrier, {})
            cur = snap.cost_total.currency
            per_currency[cur] = per_currency.get(cur, 0) + snap.cost_total.amount
        transit[snap.carrier] = transit.get(snap.carrier, 0.0) + snap.transit_hours_sum
        lanes.setdefault(snap.carrier, set()).add(snap.lane)
        days.setdefault(snap.carrier, set()).add(snap.day)
    cards = [
        Scorecard(
            carrier=carrier,
            shipments_delivered=t["delivered"],
            delivered_on_time=t["on_time"],
            shipments_with_promise=t["with_promise"],
            first_attempt_deliveries=t["first"],
            exceptions=t["exceptions"],
            lanes=len(lanes[carrier]),
            days=len(days[carrier]),
            cost_total_minor=costs.get(carrier, {}),
            transit_hours_sum=transit[carrier],
        )
        for carrier, t in totals.items()
    ]
    return sorted(cards, key=lambda c: (-c.shipments_delivered, c.carrier))
