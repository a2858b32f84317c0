"""Query read models: a complete replica of the state topic (and of the KPI topic) per instance.

Every tracking instance follows *all* partitions of `handoff.shipments.state.v1`
and `handoff.tracking.kpis.v1` without a consumer group (see
docs/decisions/0003-tracking-state-and-queries.md): any instance can answer any
query, and a rebalance of the fold never makes a shipment unanswerable. The
price is memory: every instance holds every shipment's latest state.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from aiokafka.structs import ConsumerRecord
from handoff_events import topics
from handoff_events.contracts import KpiSnapshot, ShipmentState
from handoff_events.envelope import Envelope
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

from handoff_tracking import metrics


class ShipmentReadModel:
    """Latest state per shipment, indexed by tenant (sorted ids, for cursor paging)."""

    def __init__(self) -> None:
        self._states: dict[str, ShipmentState] = {}
        self._ids_by_tenant: dict[str, list[str]] = {}

    def apply(self, state: ShipmentState) -> None:
        # The state topic has one transactional writer per partition, so the latest
        # record of a key is its latest state: no version comparison needed.
        if state.shipment_id not in self._states:
            bisect.insort(self._ids_by_tenant.setdefault(state.tenant_id, []), state.shipment_id)
        self._states[state.shipment_id] = state
        metrics.READ_MODEL_SHIPMENTS.set(len(self._states))

    def get(self, tenant_id: str, shipment_id: str) -> ShipmentState | None:
        """The shipment if it belongs to `tenant_id`; another tenant's is indistinguishable
        from a missing one."""
        state = self._states.get(shipment_id)
        return state if state is not None and state.tenant_id == tenant_id else None

    def page(
        self, tenant_id: str, status: set[str] | None, after: str | None, limit: int
    ) -> tuple[list[ShipmentState], str | None]:
        """Shipments of a tenant in id order after the cursor; returns (items, next cursor)."""
        ids = self._ids_by_tenant.get(tenant_id, [])
        start = bisect.bisect_right(ids, after) if after else 0
        items: list[ShipmentState] = []
        for shipment_id in ids[start:]:
            state = self._states[shipment_id]
            if status and state.status not in status:
                continue
            if len(items) == limit:
                return items, items[-1].shipment_id
            items.append(state)
        return items, None

    def __len__(self) -> int:
        return len(self._states)


class KpiReadModel:
    """Latest KPI snapshot per bucket."""

    def __init__(self) -> None:
        self._snapshots: dict[str, KpiSnapshot] = {}

    def apply(self, snapshot: KpiSnapshot) -> None:
        self._snapshots[snapshot.kpi_key] = snapshot

    def for_tenant(self, tenant_id: str) -> Iterable[KpiSnapshot]:
        return sorted(
            (s for s in self._snapshots.values() if s.tenant_id == tenant_id),
            key=lambda s: (s.day, s.carrier, s.lane),
        )


class ReadModels:
    """Both read models and the followers that feed them."""

    def __init__(self, settings: ServiceSettings):
        self.shipments = ShipmentReadModel()
        self.kpis = KpiReadModel()
        self._followers = [
            TopicFollower(settings, topics.STATE, on_event=self._on_state),
            TopicFollower(settings, topics.KPIS, on_event=self._on_kpi),
        ]

    def _on_state(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        if isinstance(envelope.data, ShipmentState):
            self.shipments.apply(envelope.data)

    def _on_kpi(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        if isinstance(envelope.data, KpiSnapshot):
            self.kpis.apply(envelope.data)

    @property
    def caught_up(self) -> bool:
        return all(f.caught_up.is_set() for f in self._followers)

    async def start(self) -> None:
        for follower in self._followers:
            await follower.start()

    async def stop(self) -> None:
        for follower in self._followers:
            await follower.stop()
