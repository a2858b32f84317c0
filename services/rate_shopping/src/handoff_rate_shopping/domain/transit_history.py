"""Observed transit times per carrier, service and lane (SmartRate-like), as a pure value holder.

This module owns the empirical distribution of how long deliveries actually
took: one observation per delivered shipment, `delivered_at - picked_up_at` in
hours, kept per (carrier, service, lane) where the lane is
`handoff_events.values.lane_of(...)`. Only the most recent `max_per_lane`
observations are kept, so the distribution follows a carrier that gets
better or worse. An observation carries the shipment id, so a delivered
update read twice (replays, at-least-once readers) counts once.

Quantiles use the nearest-rank method (the smallest observation with at
least q of the sample at or below it): deterministic, always an observed
value, no interpolation. A lane with fewer than `min_observations` has no
distribution: quotes then fall back to the advertised transit days.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

HistoryKey = tuple[str, str, str]
"""(carrier, service, lane)"""


@dataclass(frozen=True, slots=True)
class TransitDistribution:
    hours: tuple[float, ...]
    """Sorted ascending."""

    @classmethod
    def of(cls, hours: Sequence[float]) -> TransitDistribution:
        if not hours:
            raise ValueError("a distribution needs at least one observation")
        return cls(tuple(sorted(hours)))

    @property
    def count(self) -> int:
        return len(self.hours)

    def quantile(self, q: float) -> float:
        """Nearest-rank quantile, 0 < q ≤ 1."""
        if not 0.0 < q <= 1.0:
            raise ValueError("quantile must be in (0, 1]")
        rank = max(1, math.ceil(q * len(self.hours)))
        return self.hours[rank - 1]

    def share_within(self, hours: float) -> float:
        """The fraction of observed deliveries that took at most `hours`."""
        within = sum(1 for h in self.hours if h <= hours)
        return within / len(self.hours)


class TransitHistory:
    """A bounded, de-duplicated window of observed transit times per (carrier, service, lane)."""

    def __init__(self, max_per_lane: int = 500, min_observations: int = 20):
        if max_per_lane < 1 or min_observations < 1:
            raise ValueError("max_per_lane and min_observations must be positive")
        self.max_per_lane = max_per_lane
        self.min_observations = min_observations
        self._lanes: dict[HistoryKey, deque[tuple[str, float]]] = {}
        self._seen: dict[HistoryKey, set[str]] = {}

    def observe(
        self, carrier: str, service: str, lane: str, transit_hours: float, shipment_id: str
    ) -> bool:
        """Record one delivery; False when it was already recorded or is impossible (negative)."""
        if transit_hours < 0 or math.isnan(transit_hours):
            return False
        key = (carrier, service, lane)
        seen = self._seen.setdefault(key, set())
        if shipment_id in seen:
            return False
        window = self._lanes.setdefault(key, deque())
        window.append((shipment_id, transit_hours))
        seen.add(shipment_id)
        if len(window) > self.max_per_lane:
            dropped, _ = window.popleft()
            seen.discard(dropped)
        return True

    def distribution(self, carrier: str, service: str, lane: str) -> TransitDistribution | None:
        window = self._lanes.get((carrier, service, lane))
        if window is None or len(window) < self.min_observations:
            return None
        return TransitDistribution.of([hours for _, hours in window])

    def __len__(self) -> int:
        return sum(len(w) for w in self._lanes.values())
