"""Feeding observed transit times from `handoff.shipments.updates.v1` into a TransitHistory.

This module owns reading delivered milestones: a group-less reader of every
partition of the updates topic (the global-table pattern: each instance needs
the whole history, not its share), replayed from the beginning on start. A
`delivered` update carrying carrier, service, lane, picked_up_at and
delivered_at becomes one observation; anything else is ignored. The history
de-duplicates by shipment id, so re-reading the topic is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

from handoff_events import topics
from handoff_events.contracts import ShipmentUpdate
from handoff_events.envelope import Envelope
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

from handoff_rate_shopping.domain.transit_history import TransitHistory

log = get_logger("handoff.rate_shopping.history")


@dataclass(frozen=True, slots=True)
class Observation:
    carrier: str
    service: str
    lane: str
    transit_hours: float
    shipment_id: str


def observation_of(update: ShipmentUpdate) -> Observation | None:
    """The transit time a delivered update reports, or None when it is not one (or incomplete)."""
    if update.milestone != "delivered" or update.is_return:
        return None
    if not (update.carrier and update.service and update.lane):
        return None
    if update.picked_up_at is None or update.delivered_at is None:
        return None
    hours = (update.delivered_at - update.picked_up_at).total_seconds() / 3600
    if hours < 0:
        return None
    return Observation(update.carrier, update.service, update.lane, hours, update.shipment_id)


def feed(history: TransitHistory, update: ShipmentUpdate) -> bool:
    observation = observation_of(update)
    if observation is None:
        return False
    return history.observe(
        observation.carrier,
        observation.service,
        observation.lane,
        observation.transit_hours,
        observation.shipment_id,
    )


class HistoryFeed:
    """Keeps a TransitHistory up to date from the whole updates topic."""

    def __init__(
        self, settings: ServiceSettings, history: TransitHistory, catch_up_timeout_s: float = 30.0
    ):
        self.history = history
        self.catch_up_timeout_s = catch_up_timeout_s
        self.follower = TopicFollower(settings, topics.UPDATES, on_event=self._on_event)

    def _on_event(self, envelope: Envelope[Any], record: object) -> None:
        if isinstance(envelope.data, ShipmentUpdate):
            feed(self.history, envelope.data)

    @property
    def caught_up(self) -> bool:
        return self.follower.caught_up.is_set()

    async def start(self) -> None:
        """Start reading and wait (bounded) until the history present at start is loaded."""
        await self.follower.start()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.follower.caught_up.wait(), self.catch_up_timeout_s)
        log.info("transit history loaded", observations=len(self.history), caught_up=self.caught_up)

    async def stop(self) -> None:
        await self.follower.stop()
