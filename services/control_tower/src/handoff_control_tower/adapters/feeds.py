"""The read model's feeds: the state and KPI topics followed from the beginning (no consumer group).

Both topics are compacted, so reading them from the start rebuilds the complete
board on every start; a tombstone (a record without a value) removes its key.
"""

from __future__ import annotations

from typing import Any

from aiokafka.structs import ConsumerRecord
from handoff_events import topics
from handoff_events.contracts import KpiSnapshot, ShipmentState
from handoff_events.envelope import Envelope
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

from handoff_control_tower.domain.board import ShipmentBoard
from handoff_control_tower.domain.scorecards import KpiBook


class ReadModel:
    """The shipment board and the KPI book, kept current by two topic followers."""

    def __init__(self, settings: ServiceSettings):
        self.board = ShipmentBoard()
        self.kpis = KpiBook()
        self.state_follower = TopicFollower(
            settings, topics.STATE, on_event=self._on_state, on_raw=self._on_state_raw
        )
        self.kpi_follower = TopicFollower(
            settings, topics.KPIS, on_event=self._on_kpi, on_raw=self._on_kpi_raw
        )

    def _on_state(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        if isinstance(envelope.data, ShipmentState):
            self.board.apply(envelope.data)

    def _on_state_raw(self, record: ConsumerRecord) -> None:
        if record.value is None and record.key:
            self.board.remove(record.key.decode())

    def _on_kpi(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        if isinstance(envelope.data, KpiSnapshot):
            self.kpis.apply(envelope.data)

    def _on_kpi_raw(self, record: ConsumerRecord) -> None:
        if record.value is None and record.key:
            self.kpis.remove(record.key.decode())

    @property
    def caught_up(self) -> bool:
        return self.state_follower.caught_up.is_set() and self.kpi_follower.caught_up.is_set()

    @property
    def records_read(self) -> dict[str, int]:
        return {"state": self.state_follower.records, "kpis": self.kpi_follower.records}

    async def start(self) -> None:
        await self.state_follower.start()
        await self.kpi_follower.start()

    async def stop(self) -> None:
        await self.state_follower.stop()
        await self.kpi_follower.stop()
