"""The join stage: raw carrier scans + tracking-number assignments → canonical observations.

Both inputs are keyed `<carrier>/<tracking_number>` and co-partitioned, so one
task sees every scan of a tracking number and its assignment, in order. The
store row per key holds the shipment the number was assigned to (once known),
the scans held until then, and the recent carrier event ids (duplicates are
dropped here, so a re-posted webhook batch is harmless).

* A scan whose shipment is known becomes a `TrackingObserved` on
  `handoff.tracking.observations.v1`, keyed by shipment id, with an id derived
  from (carrier, carrier event id): the same scan always yields the same id.
* A scan that arrives before its `TrackingNumberAssigned` is held in the store
  (so in the changelog: it survives restarts) and released, in arrival order,
  when the assignment arrives. Never lost: past `join_max_held_events` per
  tracking number, further scans go to the DLQ with their original bytes.
* A record found in a partition its key does not hash to (a carrier producing
  with a non-murmur2 partitioner, e.g. librdkafka's default `consistent_random`)
  would never meet its assignment. It is re-published, inside the task's
  transaction, to the same topic keyed correctly (the engine's producer uses
  murmur2) and counted in `handoff_tracking_misrouted_records_total`.

The join decisions (`join_scan`, `join_assignment`) are pure; `build_join`
wires them into the stream engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

import msgspec
from handoff_events import topics
from handoff_events.contracts import (
    CarrierTrackingEvent,
    Event,
    TrackingNumberAssigned,
    TrackingObserved,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.ids import event_id
from handoff_events.runtime.publisher import key_partition
from handoff_events.stream.api import Context, MsgpackCodec, Rejected, StatefulProcessor

from handoff_tracking.ingress import metrics
from handoff_tracking.ingress.normalise import CodeTable, observe

JOIN_CHANGELOG: Final = "handoff.tracking.join-changelog.v1"
SOURCE: Final = "handoff/tracking"
WEBHOOK_SOURCE_PREFIX: Final = "handoff/tracking/webhook/"
"""Scans posted to the webhook carry the time Handoff received them as their `ce_time`."""
REROUTED_SOURCE: Final = "handoff/tracking/rerouted"
"""Marks a re-published misrouted record, so a partition-count mismatch cannot loop it forever."""
SEEN_LIMIT: Final = 256
DEFAULT_MAX_HELD: Final = 500

_scan_encoder = msgspec.json.Encoder()
_scan_decoder = msgspec.json.Decoder(CarrierTrackingEvent)


class HeldScan(msgspec.Struct, frozen=True, kw_only=True):
    """A scan waiting for its shipment; kept as JSON so the carrier's UTC offsets survive."""

    scan_json: bytes
    received_at: datetime


class JoinRow(msgspec.Struct, frozen=True, kw_only=True):
    """The join store's value for one `<carrier>/<tracking_number>`."""

    shipment_id: str | None = None
    tenant_id: str | None = None
    held: tuple[HeldScan, ...] = ()
    seen: tuple[str, ...] = ()
    """The most recent carrier event ids joined or held (at most SEEN_LIMIT), for de-duplication."""


class HoldLimitExceeded(Exception):
    pass


def join_key(carrier: str, tracking_number: str) -> str:
    return f"{carrier}/{tracking_number}"


def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2, as Java and aiokafka) gives `key`."""
    return key_partition(key.encode(), partitions)


def observation_id(carrier: str, carrier_event_id: str) -> str:
    return event_id(TrackingObserved.ce_type, carrier, carrier_event_id)


def observation_envelope(observed: TrackingObserved, tenant_id: str) -> Envelope[TrackingObserved]:
    return new_envelope(
        observed,
        source=SOURCE,
        tenant_id=tenant_id,
        id=observation_id(observed.carrier, observed.carrier_event_id),
        time=observed.occurred_at,
    )


def received_at(envelope: Envelope[Event], now: datetime) -> datetime:
    """When Handoff received a scan: the webhook stamped it; a topic producer's `ce_time` is
    its own business, so for those it is when the join first saw it."""
    if envelope.source.startswith(WEBHOOK_SOURCE_PREFIX) and envelope.time is not None:
        return envelope.time
    return now


def _remember(seen: tuple[str, ...], carrier_event_id: str) -> tuple[str, ...]:
    return (*seen, carrier_event_id)[-SEEN_LIMIT:]


def join_scan(
    row: JoinRow | None,
    scan: CarrierTrackingEvent,
    received_at: datetime,
    tables: Mapping[str, CodeTable],
    max_held: int = DEFAULT_MAX_HELD,
) -> tuple[JoinRow, list[TrackingObserved]]:
    """One carrier scan against the row of its tracking number: observe it, or hold it."""
    row = row or JoinRow()
    if scan.event_id in row.seen:
        return row, []
    seen = _remember(row.seen, scan.event_id)
    if row.shipment_id is None:
        if len(row.held) >= max_held:
            raise HoldLimitExceeded(f"{len(row.held)} scans already wait for an assignment")
        held = HeldScan(scan_json=_scan_encoder.encode(scan), received_at=received_at)
        return msgspec.structs.replace(row, held=(*row.held, held), seen=seen), []
    observed = observe(
        scan, tables.get(scan.carrier), shipment_id=row.shipment_id, received_at=received_at
    )
    return msgspec.structs.replace(row, seen=seen), [observed]


def join_assignment(
    row: JoinRow | None,
    assigned: TrackingNumberAssigned,
    tenant_id: str,
    tables: Mapping[str, CodeTable],
) -> tuple[JoinRow, list[TrackingObserved]]:
    """The tracking number now belongs to a shipment: release every held scan to it."""
    row = row or JoinRow()
    released = [
        observe(
            _scan_decoder.decode(held.scan_json),
            tables.get(assigned.carrier),
            shipment_id=assigned.shipment_id,
            received_at=held.received_at,
        )
        for held in row.held
    ]
    new_row = msgspec.structs.replace(
        row, shipment_id=assigned.shipment_id, tenant_id=tenant_id, held=()
    )
    return new_row, released


def build_join(
    tables: Mapping[str, CodeTable],
    *,
    partitions: int,
    max_held: int = DEFAULT_MAX_HELD,
) -> StatefulProcessor[JoinRow]:
    """The `tracking.join` stage; `partitions` is the (co-partitioned) input partition count."""

    def reroute_if_misplaced(key: str, envelope: Envelope[Event], ctx: Context[JoinRow]) -> bool:
        if partition_for(key, partitions) == ctx.partition:
            return False
        if envelope.source == REROUTED_SOURCE:
            # Already re-published once and still misplaced: the topic's partition count is
            # not `partitions`. Process it here rather than bounce it between partitions.
            return False
        metrics.MISROUTED.labels(ctx.topic).inc()
        ctx.emit(ctx.topic, key, msgspec.structs.replace(envelope, source=REROUTED_SOURCE))
        return True

    def emit(observations: list[TrackingObserved], tenant_id: str, ctx: Context[JoinRow]) -> None:
        for observed in observations:
            if observed.unknown_code:
                metrics.unknown_codes(observed.carrier).inc()
            ctx.emit(
                topics.OBSERVATIONS, observed.shipment_id, observation_envelope(observed, tenant_id)
            )

    def handle(envelope: Envelope[Event], ctx: Context[JoinRow]) -> None:
        data: Any = envelope.data
        if isinstance(data, CarrierTrackingEvent):
            key = join_key(data.carrier, data.tracking_number)
            if reroute_if_misplaced(key, envelope, ctx):
                return
            row = ctx.store.get(key)
            if row is not None and data.event_id in row.seen:
                return  # a duplicate (re-posted batch, producer retry): already joined or held
            try:
                new_row, observations = join_scan(
                    row, data, received_at(envelope, ctx.now), tables, max_held
                )
            except HoldLimitExceeded as exc:
                raise Rejected("hold_limit_exceeded", str(exc), "$.tracking_number", key) from None
            ctx.store.put(key, new_row)
            if new_row.tenant_id is None:
                metrics.held(data.carrier).inc()
                return
            emit(observations, new_row.tenant_id, ctx)
        elif isinstance(data, TrackingNumberAssigned):
            key = join_key(data.carrier, data.tracking_number)
            if reroute_if_misplaced(key, envelope, ctx):
                return
            new_row, observations = join_assignment(
                ctx.store.get(key), data, envelope.tenant_id, tables
            )
            ctx.store.put(key, new_row)
            emit(observations, envelope.tenant_id, ctx)
        else:
            raise Rejected(
                "unexpected_type", "the join takes carrier scans and assignments", "type"
            )

    return StatefulProcessor(
        service="tracking",
        stage="join",
        inputs=[topics.CARRIER_TRACKING, topics.TRACKING_NUMBERS],
        changelog=JOIN_CHANGELOG,
        codec=MsgpackCodec(JoinRow),
        handle=handle,
    )
