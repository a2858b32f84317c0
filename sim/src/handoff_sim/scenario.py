"""What a simulated run achieved: the scenario summary of `make up --headless`.

`WorldView` follows the public outputs of Handoff the way any consumer would:
`handoff.shipments.state.v1` (latest state per shipment) and
`handoff.tracking.kpis.v1` (latest KPI snapshot per bucket), read_committed,
without a consumer group. `summarise` is pure: it folds those views and the
marketplace's oracle (what was sent) into the figures the run prints — orders
sent, shipments allocated and delivered, statuses, KPIs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handoff_events import topics
from handoff_events.contracts import KpiSnapshot, ShipmentState
from handoff_events.envelope import Envelope
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

TERMINAL = frozenset(
    {"rejected", "cancelled", "delivered", "returned_to_sender", "allocation_failed"}
)
ALLOCATED_OR_LATER = frozenset(
    {
        "allocated",
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivery_attempt_failed",
        "available_for_pickup",
        "delivered",
        "exception",
        "returning_to_sender",
        "returned_to_sender",
    }
)


def read_oracle(path: Path) -> list[dict[str, Any]]:
    """Every line the marketplace recorded (a missing file is an empty run)."""
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def expected_shipments(oracle: Iterable[Mapping[str, Any]]) -> set[str]:
    """The shipment ids the marketplace's valid orders should have become."""
    return {
        sid for e in oracle if e.get("kind") == "order_placed" for sid in e.get("shipment_ids", [])
    }


def settled(states: Mapping[str, ShipmentState], expected: set[str]) -> bool:
    """Every expected shipment is known and every known shipment (returns too) is final."""
    if not expected or not expected <= set(states):
        return False
    return all(s.status in TERMINAL for s in states.values())


@dataclass(frozen=True)
class KpiTotals:
    buckets: int
    delivered: int
    on_time: int
    with_promise: int
    first_attempt: int
    exceptions: int
    mean_transit_hours: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "buckets": self.buckets,
            "delivered": self.delivered,
            "on_time_rate": _rate(self.on_time, self.with_promise),
            "first_attempt_rate": _rate(self.first_attempt, self.delivered),
            "exception_rate": _rate(self.exceptions, self.delivered),
            "mean_transit_hours": None
            if self.mean_transit_hours is None
            else round(self.mean_transit_hours, 1),
        }


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 3)


def kpi_totals(snapshots: Iterable[KpiSnapshot]) -> KpiTotals:
    snaps = list(snapshots)
    delivered = sum(s.shipments_delivered for s in snaps)
    transit = sum(s.transit_hours_sum for s in snaps)
    return KpiTotals(
        buckets=len(snaps),
        delivered=delivered,
        on_time=sum(s.delivered_on_time for s in snaps),
        with_promise=sum(
            s.shipments_with_promise
            if s.shipments_with_promise is not None
            else s.shipments_delivered
            for s in snaps
        ),
        first_attempt=sum(s.first_attempt_deliveries for s in snaps),
        exceptions=sum(s.exceptions for s in snaps),
        mean_transit_hours=None if delivered == 0 else transit / delivered,
    )


def summarise(
    oracle: Iterable[Mapping[str, Any]],
    states: Mapping[str, ShipmentState],
    kpis: Mapping[str, KpiSnapshot],
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's figures: what the marketplaces sent, where the shipments ended, the KPIs."""
    sent = list(oracle)
    orders = [e for e in sent if e.get("kind") == "order_placed"]
    outbound = {k: s for k, s in states.items() if not s.is_return}
    returns = {k: s for k, s in states.items() if s.is_return}
    statuses = Counter(s.status for s in outbound.values())
    by_carrier = Counter(s.carrier for s in outbound.values() if s.carrier)
    expected = expected_shipments(orders)
    summary: dict[str, Any] = {
        "orders_sent": len(orders),
        "orders_by_channel": dict(Counter(e.get("channel") for e in orders)),
        "orders_invalid_sent": sum(1 for e in orders if e.get("defect")),
        "orders_refused_over_http": sum(
            1 for e in orders if e.get("http_status") not in (None, 202)
        ),
        "cancellations_sent": sum(1 for e in sent if e.get("kind") == "order_cancelled"),
        "returns_requested": sum(1 for e in sent if e.get("kind") == "return_requested"),
        "shipments_expected": len(expected),
        "shipments_seen": len(outbound),
        "shipments_seen_of_expected": len(expected & set(outbound)),
        "shipments_allocated": sum(
            1 for s in outbound.values() if s.status in ALLOCATED_OR_LATER or s.carrier
        ),
        "shipments_delivered": statuses.get("delivered", 0),
        "shipments_terminal": sum(n for status, n in statuses.items() if status in TERMINAL),
        "shipments_by_status": dict(sorted(statuses.items())),
        "shipments_by_carrier": dict(sorted(by_carrier.items())),
        "shipments_on_time": sum(1 for s in outbound.values() if s.on_time),
        "return_shipments": len(returns),
        "return_shipments_by_status": dict(
            sorted(Counter(s.status for s in returns.values()).items())
        ),
        "kpis": kpi_totals(kpis.values()).as_dict(),
    }
    if extra:
        summary.update(extra)
    return summary


class WorldView:
    """The latest shipment states and KPI snapshots, as any consumer of the public topics sees them."""

    def __init__(self, settings: ServiceSettings):
        self.states: dict[str, ShipmentState] = {}
        self.kpis: dict[str, KpiSnapshot] = {}
        self.state_records = 0
        self._followers = [
            TopicFollower(settings, topics.STATE, on_event=self._on_state),
            TopicFollower(settings, topics.KPIS, on_event=self._on_kpi),
        ]

    def _on_state(self, env: Envelope[Any], record: Any) -> None:
        if isinstance(env.data, ShipmentState):
            self.state_records += 1
            self.states[env.data.shipment_id] = env.data

    def _on_kpi(self, env: Envelope[Any], record: Any) -> None:
        if isinstance(env.data, KpiSnapshot):
            self.kpis[env.data.kpi_key] = env.data

    async def start(self) -> None:
        for follower in self._followers:
            await follower.start()

    async def stop(self) -> None:
        for follower in self._followers:
            await follower.stop()
