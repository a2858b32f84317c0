"""Which carrier a tracking number belongs to: the webhook's least-privilege check.

`OwnershipIndex` is a plain in-process map, tracking number → carriers, fed by
`OwnershipFollower` (a group-less reader of the whole
`handoff.tracking.tracking-numbers.v1` topic: every instance needs every
partition, whichever shipments it owns). `check_tracking_number` is the pure
rule the webhook applies to each posted scan.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from handoff_events import topics
from handoff_events.contracts import TrackingNumberAssigned
from handoff_events.envelope import Envelope
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

from handoff_tracking.ingress.normalise import CodeTable

log = get_logger("handoff.tracking.ingress")
_NOBODY: frozenset[str] = frozenset()


class OwnershipIndex:
    """Tracking number → the carriers it was assigned to (usually exactly one)."""

    def __init__(self) -> None:
        self._owners: dict[str, frozenset[str]] = {}

    def record(self, carrier: str, tracking_number: str) -> None:
        known = self._owners.get(tracking_number, _NOBODY)
        if carrier not in known:
            self._owners[tracking_number] = known | {carrier}

    def owners(self, tracking_number: str) -> frozenset[str]:
        # Immutable values: answered without a copy (this runs for every posted scan).
        return self._owners.get(tracking_number, _NOBODY)

    def __len__(self) -> int:
        return len(self._owners)


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Literal["ok", "foreign", "invalid_format"]
    detail: str = ""


def check_tracking_number(
    carrier: str,
    tracking_number: str,
    tables: Mapping[str, CodeTable],
    owners: frozenset[str],
) -> Verdict:
    """May `carrier` post scans for `tracking_number`?

    A known assignment decides (it is what Handoff itself allocated). Before
    the assignment is known (scans may precede it), the number must have the
    carrier's own format; one that only fits another carrier's format is
    refused as foreign, one that fits nobody's is invalid.
    """
    if owners:
        if carrier in owners:
            return Verdict("ok")
        return Verdict("foreign", "the tracking number is assigned to another carrier")
    own = tables.get(carrier)
    if own is not None and own.owns_format(tracking_number):
        return Verdict("ok")
    if any(t.owns_format(tracking_number) for c, t in tables.items() if c != carrier):
        return Verdict("foreign", "the tracking number has another carrier's format")
    pattern = own.tracking_number_pattern.pattern if own is not None else "?"
    return Verdict("invalid_format", f"does not match {carrier}'s format {pattern}")


class OwnershipFollower:
    """Keeps an `OwnershipIndex` up to date from the tracking-numbers topic (started lazily)."""

    def __init__(self, settings: ServiceSettings, index: OwnershipIndex):
        self.index = index
        self._settings = settings
        self._follower: TopicFollower | None = None
        self._lock = asyncio.Lock()

    def _on_event(self, envelope: Envelope[Any], record: Any) -> None:
        data = envelope.data
        if isinstance(data, TrackingNumberAssigned):
            self.index.record(data.carrier, data.tracking_number)

    async def start(self) -> None:
        async with self._lock:
            if self._follower is None:
                follower = TopicFollower(self._settings, topics.TRACKING_NUMBERS, self._on_event)
                await follower.start()
                self._follower = follower
                log.info("following tracking-number assignments", topic=follower.topic)

    async def stop(self) -> None:
        async with self._lock:
            if self._follower is not None:
                await self._follower.stop()
                self._follower = None

    @property
    def started(self) -> bool:
        return self._follower is not None

    async def caught_up(self, timeout_s: float) -> bool:
        """Start if needed and wait until every assignment written before the start is known."""
        follower = self._follower
        if follower is not None and follower.caught_up.is_set():
            return True  # the steady state: no task, no timer per request
        await self.start()
        assert self._follower is not None
        try:
            await asyncio.wait_for(self._follower.caught_up.wait(), timeout_s)
        except TimeoutError:
            return False
        return True
