"""The KPI table: tracking's compacted KPI snapshots, followed from every partition.

Snapshots are keyed per (carrier, lane, tenant, day) and the latest one per key
wins; the scorecards are recomputed only when a snapshot changed. The table is
a cache of a topic, not allocation state: a ranking records the scorecards it
used in its explanation, so later steps of a shipment never depend on it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from handoff_events import topics
from handoff_events.contracts import KpiSnapshot
from handoff_events.envelope import Envelope
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

from handoff_carrier_allocation.domain.policy import Scorecard
from handoff_carrier_allocation.domain.scorecards import ScorecardDefaults, scorecards_from_kpis

log = get_logger("handoff.carrier_allocation.kpis")


class KpiTable:
    def __init__(self, defaults: ScorecardDefaults):
        self._defaults = defaults
        self._latest: dict[str, KpiSnapshot] = {}
        self._cards: dict[str, Scorecard] | None = {}

    def apply(self, snapshot: KpiSnapshot) -> None:
        self._latest[snapshot.kpi_key] = snapshot
        self._cards = None

    def scorecards(self) -> Mapping[str, Scorecard]:
        if self._cards is None:
            self._cards = scorecards_from_kpis(self._latest, self._defaults)
        return self._cards


class KpiFollower:
    """Keeps a `KpiTable` up to date from `handoff.tracking.kpis.v1`."""

    def __init__(self, settings: ServiceSettings, table: KpiTable, catch_up_timeout_s: float):
        self.table = table
        self._timeout = catch_up_timeout_s
        self._follower = TopicFollower(settings, topics.KPIS, on_event=self._on_event)

    def _on_event(self, envelope: Envelope[Any], record: object) -> None:
        if isinstance(envelope.data, KpiSnapshot):
            self.table.apply(envelope.data)

    async def start(self) -> None:
        await self._follower.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._follower.caught_up.wait(), self._timeout)
        if not self._follower.caught_up.is_set():
            log.warning("KPI table not caught up; ranking with what is known so far")

    async def stop(self) -> None:
        await self._follower.stop()
