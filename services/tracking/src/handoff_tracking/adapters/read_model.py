"""Query read models: a complete replica of the state topic (and of the KPI topic) per instance.

Every tracking instance follows *all* partitions of `handoff.shipments.state.v1`
and `handoff.tracking.kpis.v1` without a consumer group (see
docs/decisions/0003-tracking-state-and-queries.md): any instance can answer any
query, and a rebalance of the fold never makes a shipment unanswerable. The
price is memory: every instance holds every shipment's latest state, as the state
record's JSON bytes (decoded per request), not as objects: ~3-7 KB per shipment
instead of ~12-17 KB (decision 0003).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from aiokafka.structs import ConsumerRecord
from handoff_events import topics
from handoff_events.contracts import TERMINAL_STATUSES, KpiSnapshot, ShipmentState
from handoff_events.envelope import DecodeError, Envelope, decode_data
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.stream.follow import TopicFollower

from handoff_tracking import metrics

log = get_logger("handoff.tracking.read_model")


class _Indexed(msgspec.Struct):
    """What the read model indexes a state by: decoded without building the rest of it."""

    shipment_id: str
    tenant_id: str
    status: str
    updated_at: datetime


_JSON = msgspec.json.Encoder()
_SWEEP_EVERY_S = 3600.0
"""How often a replica with a retention looks for finished shipments that aged out."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ShipmentReadModel:
    """Latest state per shipment, indexed by tenant (sorted ids, for cursor paging).

    A state is kept as the JSON of its record on the state topic, with the tenant and
    status it is indexed and filtered by, and decoded when a request reads it: a
    decoded `ShipmentState` takes 2-4 times the memory of its JSON, and most states
    are replaced by a newer one long before anyone asks for them.

    With a `retention`, a finished shipment (terminal status) whose state has not changed
    for that long is left out: not kept when its record is read, and removed by `sweep`
    once it ages out. It stays on the state topic; a newer state brings it back."""

    def __init__(
        self,
        retention: timedelta | None = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        # id -> (JSON, tenant, status, updated_at as a POSIX timestamp)
        self._states: dict[str, tuple[bytes, str, str, float]] = {}
        self._ids_by_tenant: dict[str, list[str]] = {}
        self._names: dict[str, str] = {}  # one string object per tenant id and status
        self.retention_s = None if retention is None else retention.total_seconds()
        self._clock = clock

    def _aged_out(self, status: str, updated_at: float, now: float) -> bool:
        return (
            self.retention_s is not None
            and status in TERMINAL_STATUSES
            and updated_at < now - self.retention_s
        )

    def apply(self, state: ShipmentState) -> None:
        self.apply_json(_JSON.encode(state))

    def apply_json(self, raw: bytes) -> None:
        """A state as the JSON of its record (`DecodeError` naming the field if the
        indexed fields are missing or mistyped: the record is then not kept)."""
        index = decode_data(_Indexed, raw)
        updated_at = index.updated_at.timestamp()
        if self.retention_s is not None and self._aged_out(
            index.status, updated_at, self._clock().timestamp()
        ):
            self.forget(index.shipment_id)  # and any older state of it that was kept
            return
        names = self._names
        tenant = names.setdefault(index.tenant_id, index.tenant_id)
        status = names.setdefault(index.status, index.status)
        # The state topic has one transactional writer per partition, so the latest
        # record of a key is its latest state: no version comparison needed.
        if index.shipment_id not in self._states:
            bisect.insort(self._ids_by_tenant.setdefault(tenant, []), index.shipment_id)
        self._states[index.shipment_id] = (raw, tenant, status, updated_at)
        metrics.READ_MODEL_SHIPMENTS.set(len(self._states))

    def sweep(self) -> int:
        """Remove the kept finished shipments that aged out of the retention since they
        were read; returns how many."""
        if self.retention_s is None:
            return 0
        now = self._clock().timestamp()
        aged = [
            shipment_id
            for shipment_id, (_, _, status, updated_at) in self._states.items()
            if self._aged_out(status, updated_at, now)
        ]
        for shipment_id in aged:
            self.forget(shipment_id)
        return len(aged)

    def forget(self, shipment_id: str) -> None:
        """A tombstone on the state topic: the shipment's state was deleted."""
        kept = self._states.pop(shipment_id, None)
        if kept is None:
            return
        ids = self._ids_by_tenant[kept[1]]
        at = bisect.bisect_left(ids, shipment_id)
        if at < len(ids) and ids[at] == shipment_id:
            del ids[at]
        metrics.READ_MODEL_SHIPMENTS.set(len(self._states))

    def get(self, tenant_id: str, shipment_id: str) -> ShipmentState | None:
        """The shipment if it belongs to `tenant_id`; another tenant's is indistinguishable
        from a missing one."""
        kept = self._states.get(shipment_id)
        if kept is None or kept[1] != tenant_id:
            return None
        return decode_data(ShipmentState, kept[0])

    def page(
        self, tenant_id: str, status: set[str] | None, after: str | None, limit: int
    ) -> tuple[list[ShipmentState], str | None]:
        """Shipments of a tenant in id order after the cursor; returns (items, next cursor)."""
        ids = self._ids_by_tenant.get(tenant_id, [])
        start = bisect.bisect_right(ids, after) if after else 0
        items: list[ShipmentState] = []
        for shipment_id in ids[start:]:
            raw, _, state_status, _ = self._states[shipment_id]
            if status and state_status not in status:
                continue
            if len(items) == limit:
                return items, items[-1].shipment_id
            items.append(decode_data(ShipmentState, raw))
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


def _ce_type(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    for name, value in headers:
        if name == "ce_type":
            return None if value is None else value.decode(errors="replace")
    return None


class ReadModels:
    """Both read models and the followers that feed them."""

    def __init__(
        self,
        settings: ServiceSettings,
        retention: timedelta | None = None,
        clock: Callable[[], datetime] | None = None,
    ):
        self.shipments = ShipmentReadModel(retention, clock or _utc_now)
        self.kpis = KpiReadModel()
        self._followers = [
            TopicFollower(settings, topics.STATE, on_raw=self._on_state),
            TopicFollower(settings, topics.KPIS, on_event=self._on_kpi),
        ]
        self._sweeper: asyncio.Task[None] | None = None

    def _on_state(self, record: ConsumerRecord) -> None:
        """A state record, kept as its JSON; a tombstone (no value) removes its key, as in
        every reader of the compacted topic; records of other types are skipped."""
        if record.value is None:
            if record.key is not None:
                self.shipments.forget(record.key.decode(errors="replace"))
            return
        if _ce_type(record.headers) != ShipmentState.ce_type:
            return
        try:
            self.shipments.apply_json(record.value)
        except DecodeError as err:
            log.warning("read model skipped a state record", reason=err.reason, field=err.field,
                        partition=record.partition, offset=record.offset)  # fmt: skip

    def _on_kpi(self, envelope: Envelope[Any], record: ConsumerRecord) -> None:
        if isinstance(envelope.data, KpiSnapshot):
            self.kpis.apply(envelope.data)

    @property
    def caught_up(self) -> bool:
        return all(f.caught_up.is_set() for f in self._followers)

    async def start(self) -> None:
        for follower in self._followers:
            await follower.start()
        if self.shipments.retention_s is not None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="read-model-sweep")

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for follower in self._followers:
            await follower.stop()

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(_SWEEP_EVERY_S)
            removed = self.shipments.sweep()
            if removed:
                log.info("finished shipments aged out of the query replica", removed=removed)
