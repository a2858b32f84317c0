"""Capacity buckets (pure): how many shipments a carrier takes from a hub on a day.

A bucket is `<carrier>/<hub_id>/<day>`. Reservations and releases for a bucket
are keyed by the bucket, so exactly one stream task owns it and sees its
requests in order; its state commits with the decision in one transaction. One
owner + transactional state means two allocation instances can never both
grant the last slot.

The state of a bucket is split over store keys so that a decision costs the same
whether the bucket holds ten shipments or a hundred thousand:

- `<bucket key>` → `BucketState`: the limit at the last decision and how many
  slots are held (a counter, a few bytes);
- `<bucket key>#<shipment id>` → `Slot`: one per holder, the request id that
  holds it (`slot_key`).

(The first layout kept every holder in one `reserved` map under the bucket key:
each decision copied the map and re-wrote all of it to the changelog, O(holders)
CPU and bytes per request, and a bucket past ~20,000 holders no longer fit in
one Kafka record, wedging its partition. Values written that way are still read:
their `reserved` holders count, and each one moves to a `Slot` when next touched.)

Idempotence is per shipment: a shipment holds at most one slot in a bucket.
Asking again returns the same answer without counting twice; releasing a slot
that is not held (or is held under another request) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from handoff_events.contracts import CapacityBucket


class BucketState(msgspec.Struct, frozen=True, kw_only=True):
    """The store value of one bucket's counter: its limit at the last decision, slots held."""

    bucket: CapacityBucket
    limit: int
    held: int = 0
    """Slots held by shipments with a `Slot` entry."""
    reserved: dict[str, str] = {}
    """Holders written inline by the first layout (shipment id → request id): counted,
    drained as they are touched, never added to."""

    @property
    def taken(self) -> int:
        return self.held + len(self.reserved)

    @property
    def remaining(self) -> int:
        return max(self.limit - self.taken, 0)


class Slot(msgspec.Struct, frozen=True, kw_only=True):
    """The store value of one holder (`slot_key`): the reservation request holding the slot."""

    request_id: str


def slot_key(bucket: CapacityBucket, shipment_id: str) -> str:
    return f"{bucket.key}#{shipment_id}"


@dataclass(frozen=True)
class ReservationDecision:
    state: BucketState
    slot: Slot | None
    """The shipment's slot after the decision (None: it holds none)."""
    granted: bool
    reason: str | None = None
    """Why refused: bucket_full."""


@dataclass(frozen=True)
class ReleaseDecision:
    state: BucketState
    slot: Slot | None
    released: bool


def empty_bucket(bucket: CapacityBucket, limit: int) -> BucketState:
    return BucketState(bucket=bucket, limit=limit)


def _without(reserved: dict[str, str], shipment_id: str) -> dict[str, str]:
    return {k: v for k, v in reserved.items() if k != shipment_id}


def reserve(
    state: BucketState | None,
    slot: Slot | None,
    bucket: CapacityBucket,
    limit: int,
    shipment_id: str,
    request_id: str,
) -> ReservationDecision:
    """Grant a slot if one is free (or the shipment already holds one); else refuse.

    `slot` is the shipment's current slot in this bucket, if any. `limit` is the
    configured limit now: lowering it never evicts holders, it only refuses new
    reservations until enough are released.
    """
    current = state or empty_bucket(bucket, limit)
    inline = shipment_id in current.reserved
    if slot is not None or inline:
        # Same shipment again (a retried request, or a new request for the same bucket):
        # one slot per shipment, remember the latest request id so its release matches.
        if inline:  # a first-layout holder moves to its own slot; the count is unchanged
            moved = msgspec.structs.replace(
                current,
                limit=limit,
                held=current.held + (1 if slot is None else 0),
                reserved=_without(current.reserved, shipment_id),
            )
            return ReservationDecision(moved, Slot(request_id=request_id), granted=True)
        return ReservationDecision(
            msgspec.structs.replace(current, limit=limit),
            Slot(request_id=request_id),
            granted=True,
        )
    if current.taken >= limit:
        return ReservationDecision(
            msgspec.structs.replace(current, limit=limit),
            None,
            granted=False,
            reason="bucket_full",
        )
    granted = msgspec.structs.replace(current, limit=limit, held=current.held + 1)
    return ReservationDecision(granted, Slot(request_id=request_id), granted=True)


def release(
    state: BucketState | None,
    slot: Slot | None,
    bucket: CapacityBucket,
    limit: int,
    shipment_id: str,
    request_id: str,
) -> ReleaseDecision:
    """Free the shipment's slot if it is held under `request_id` (the reservation's id)."""
    current = state or empty_bucket(bucket, limit)
    if slot is not None and slot.request_id == request_id:
        freed = msgspec.structs.replace(current, limit=limit, held=max(current.held - 1, 0))
        return ReleaseDecision(freed, None, released=True)
    if slot is None and current.reserved.get(shipment_id) == request_id:
        freed = msgspec.structs.replace(
            current, limit=limit, reserved=_without(current.reserved, shipment_id)
        )
        return ReleaseDecision(freed, None, released=True)
    return ReleaseDecision(msgspec.structs.replace(current, limit=limit), slot, released=False)
