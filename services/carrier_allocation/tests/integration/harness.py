"""Helpers for allocation's integration tests: data files, feeding shipments, watching outcomes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from handoff_events import topics
from handoff_events.contracts import (
    AllocationFailed,
    CarrierAllocated,
    Quote,
    TenderFailed,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

from services.carrier_allocation.tests.factories import rates, request


def write_config(
    directory: Path,
    *,
    capacity: str,
    tendering: str = "",
    policies: str = '[tenants.default]\nobjective = "cheapest_meeting_promise"\n',
) -> Path:
    """A config_dir with allocation/{policies,capacity,tendering}.toml."""
    alloc = directory / "allocation"
    alloc.mkdir(parents=True, exist_ok=True)
    (alloc / "policies.toml").write_text(policies)
    (alloc / "capacity.toml").write_text(capacity)
    (alloc / "tendering.toml").write_text(tendering)
    return directory


async def feed(
    settings: ServiceSettings,
    shipment_ids: list[str],
    quotes: Callable[[str], list[Quote]],
    tenant: str = "acme",
) -> None:
    """Publish each shipment's request (intake) and quotes (rate shopping)."""
    publisher = EventPublisher(settings, client_id="test-feeder")
    await publisher.start()
    try:
        items: list[tuple[str, str, Envelope[Any]]] = []
        for sid in shipment_ids:
            items.append(
                (
                    topics.INTAKE_SHIPMENTS,
                    sid,
                    new_envelope(request(sid), source="test", tenant_id=tenant, id=f"req-{sid}"),
                )
            )
            items.append(
                (
                    topics.QUOTES,
                    sid,
                    new_envelope(
                        rates(sid, *quotes(sid)), source="test", tenant_id=tenant, id=f"q-{sid}"
                    ),
                )
            )
        await publisher.publish_many(items)
    finally:
        await publisher.stop()


@dataclass
class Outcomes:
    """Everything committed on the allocations topic, by shipment."""

    allocated: dict[str, list[CarrierAllocated]] = field(default_factory=dict)
    failed: dict[str, list[AllocationFailed]] = field(default_factory=dict)
    tender_failures: list[TenderFailed] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)

    def on_event(self, envelope: Envelope[Any], record: object) -> None:
        self.event_ids.append(envelope.id)
        data = envelope.data
        if isinstance(data, CarrierAllocated):
            self.allocated.setdefault(data.shipment_id, []).append(data)
        elif isinstance(data, AllocationFailed):
            self.failed.setdefault(data.shipment_id, []).append(data)
        elif isinstance(data, TenderFailed):
            self.tender_failures.append(data)

    @property
    def decided(self) -> set[str]:
        return set(self.allocated) | set(self.failed)

    def allocated_to(self, carrier: str) -> set[str]:
        return {sid for sid, evs in self.allocated.items() if evs[0].carrier == carrier}


async def watch(settings: ServiceSettings) -> tuple[Outcomes, TopicFollower]:
    outcomes = Outcomes()
    follower = TopicFollower(settings, topics.ALLOCATIONS, on_event=outcomes.on_event)
    await follower.start()
    return outcomes, follower


async def wait_until(condition: Callable[[], bool], within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {within_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.1)
