"""Delivery KPIs per (carrier, lane, tenant, day) (pure).

A delivered shipment contributes its figures to one bucket (the UTC day it was
delivered). The fold stage sends a `KpiContribution` whenever those figures
change; the KPI stage keeps, per bucket, the latest contribution of each
shipment, so a re-sent contribution replaces rather than adds, and a snapshot is
always a function of the bucket's contributions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC

import msgspec
from handoff_events.contracts import KpiContribution, KpiSnapshot, ShipmentState
from handoff_events.values import Money

UNKNOWN_LANE = "unknown"


def kpi_key(carrier: str, lane: str, tenant_id: str, day: str) -> str:
    return f"{carrier}/{lane}/{tenant_id}/{day}"


def contribution(state: ShipmentState) -> KpiContribution | None:
    """The shipment's KPI figures once it is delivered by a known carrier, else None."""
    if state.status != "delivered" or state.delivered_at is None or state.carrier is None:
        return None
    lane = state.lane or UNKNOWN_LANE
    day = state.delivered_at.astimezone(UTC).date()
    transit = (
        round((state.delivered_at - state.picked_up_at).total_seconds() / 3600, 3)
        if state.picked_up_at is not None
        else None
    )
    return KpiContribution(
        kpi_key=kpi_key(state.carrier, lane, state.tenant_id, day.isoformat()),
        shipment_id=state.shipment_id,
        tenant_id=state.tenant_id,
        carrier=state.carrier,
        lane=lane,
        day=day,
        contributed_at=state.delivered_at,
        service=state.service,
        had_promise=state.promised_by is not None,
        on_time=state.on_time is True,
        first_attempt=not any(a.outcome == "failed" for a in state.attempts),
        had_exception=bool(state.exceptions),
        transit_hours=transit,
        cost=state.price,
    )


class KpiBucket(msgspec.Struct, frozen=True, kw_only=True):
    """The KPI stage's store value: the latest contribution of each shipment in a bucket."""

    kpi_key: str
    contributions: dict[str, KpiContribution] = {}


def apply(bucket: KpiBucket | None, item: KpiContribution) -> KpiBucket:
    current = dict(bucket.contributions) if bucket else {}
    if item.retract:
        current.pop(item.shipment_id, None)
    else:
        current[item.shipment_id] = item
    return KpiBucket(kpi_key=item.kpi_key, contributions=current)


def p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Figures:
    """Counts and sums over a set of contributions (a bucket, or a carrier and tenant)."""

    delivered: int
    on_time: int
    promised: int
    first_attempt: int
    with_exception: int
    transit_hours: list[float]
    cost_total: Money | None

    def rates(self) -> dict[str, float | None]:
        """The ratios a dashboard shows."""
        n, transit_n = self.delivered, len(self.transit_hours)
        return {
            "on_time_rate": self.on_time / self.promised if self.promised else None,
            "first_attempt_success_rate": self.first_attempt / n if n else None,
            "exception_rate": self.with_exception / n if n else None,
            "transit_hours_avg": sum(self.transit_hours) / transit_n if transit_n else None,
            "transit_hours_p90": p90(self.transit_hours),
            "cost_per_delivery_minor": self.cost_total.amount / n
            if self.cost_total and n
            else None,
        }


def figures(items: list[KpiContribution]) -> Figures:
    transit = sorted(c.transit_hours for c in items if c.transit_hours is not None)
    costs = [c.cost for c in items if c.cost is not None]
    cost_total: Money | None = None
    if costs:
        # A bucket is one carrier's lane: one currency. Others are left out rather than mixed.
        currency = costs[0].currency
        cost_total = Money(
            amount=sum(c.amount for c in costs if c.currency == currency), currency=currency
        )
    return Figures(
        delivered=len(items),
        on_time=sum(1 for c in items if c.had_promise and c.on_time),
        promised=sum(1 for c in items if c.had_promise),
        first_attempt=sum(1 for c in items if c.first_attempt),
        with_exception=sum(1 for c in items if c.had_exception),
        transit_hours=transit,
        cost_total=cost_total,
    )


def snapshot(bucket: KpiBucket, like: KpiContribution) -> KpiSnapshot:
    """The bucket's KPIs; `like` (any contribution to it) names the bucket's dimensions."""
    items = sorted(bucket.contributions.values(), key=lambda c: c.shipment_id)
    fig = figures(items)
    return KpiSnapshot(
        kpi_key=bucket.kpi_key,
        carrier=like.carrier,
        lane=like.lane,
        tenant_id=like.tenant_id,
        day=like.day,
        shipments_delivered=fig.delivered,
        delivered_on_time=fig.on_time,
        first_attempt_deliveries=fig.first_attempt,
        exceptions=fig.with_exception,
        transit_hours_sum=round(sum(fig.transit_hours), 3),
        transit_hours_p90=p90(fig.transit_hours),
        cost_total=fig.cost_total,
        computed_at=max((c.contributed_at for c in items), default=like.contributed_at),
        service=like.service,
        transit_hours=fig.transit_hours,
        shipments_with_promise=fig.promised,
    )


def snapshot_rates(snap: KpiSnapshot) -> dict[str, float | None]:
    """The ratios of a published snapshot (queries)."""
    return Figures(
        delivered=snap.shipments_delivered,
        on_time=snap.delivered_on_time,
        promised=snap.shipments_with_promise or 0,
        first_attempt=snap.first_attempt_deliveries,
        with_exception=snap.exceptions,
        transit_hours=list(snap.transit_hours),
        cost_total=snap.cost_total,
    ).rates()
