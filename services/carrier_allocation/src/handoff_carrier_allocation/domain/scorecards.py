"""Carrier scorecards from tracking's KPI snapshots (pure).

Tracking publishes one compacted `KpiSnapshot` per (carrier, lane, tenant, day);
the latest snapshot for a key replaces the previous one. A carrier's scorecard
sums every current snapshot of that carrier (all lanes, tenants and days:
delivery performance is a property of the carrier's network far more than of
one tenant, and pooling keeps small tenants from being judged on a handful of
parcels).

Rates are smoothed towards documented defaults (`[scorecards]` in
policies.toml) with `prior_weight` pseudo-shipments, so a carrier with no
history gets exactly the defaults and three lucky deliveries do not make a
carrier perfect: rate = (observed successes + default × prior_weight) /
(delivered + prior_weight).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from handoff_events.contracts import KpiSnapshot

from handoff_carrier_allocation.domain.policy import Scorecard


@dataclass(frozen=True)
class ScorecardDefaults:
    on_time_rate: float = 0.90
    first_attempt_rate: float = 0.85
    exception_rate: float = 0.03
    prior_weight: int = 20

    def scorecard(self, carrier: str = "*") -> Scorecard:
        return Scorecard(
            carrier=carrier,
            on_time_rate=self.on_time_rate,
            first_attempt_rate=self.first_attempt_rate,
            exception_rate=self.exception_rate,
        )


def _smoothed(successes: int, total: int, default: float, prior_weight: int) -> float:
    denominator = total + prior_weight
    if denominator <= 0:
        return default
    rate = (successes + default * prior_weight) / denominator
    return min(1.0, max(0.0, rate))


def scorecards_from_kpis(
    latest: Mapping[str, KpiSnapshot] | Iterable[KpiSnapshot], defaults: ScorecardDefaults
) -> dict[str, Scorecard]:
    """Fold the current snapshots (one per KPI key) into one scorecard per carrier."""
    snapshots = latest.values() if isinstance(latest, Mapping) else latest
    delivered: dict[str, int] = {}
    on_time: dict[str, int] = {}
    first_attempt: dict[str, int] = {}
    exceptions: dict[str, int] = {}
    for snap in snapshots:
        c = snap.carrier
        delivered[c] = delivered.get(c, 0) + max(snap.shipments_delivered, 0)
        on_time[c] = on_time.get(c, 0) + max(snap.delivered_on_time, 0)
        first_attempt[c] = first_attempt.get(c, 0) + max(snap.first_attempt_deliveries, 0)
        exceptions[c] = exceptions.get(c, 0) + max(snap.exceptions, 0)
    cards: dict[str, Scorecard] = {}
    w = defaults.prior_weight
    for carrier in sorted(delivered):
        n = delivered[carrier]
        cards[carrier] = Scorecard(
            carrier=carrier,
            on_time_rate=_smoothed(on_time[carrier], n, defaults.on_time_rate, w),
            first_attempt_rate=_smoothed(first_attempt[carrier], n, defaults.first_attempt_rate, w),
            # exceptions are counted per shipment handled; delivered is the best denominator
            # tracking gives us, so a carrier with many exceptions and few deliveries scores badly.
            exception_rate=_smoothed(exceptions[carrier], n, defaults.exception_rate, w),
            shipments_delivered=n,
            basis="observed" if n > 0 else "default",
        )
    return cards
