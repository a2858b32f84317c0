"""Capacity buckets (pure): how many shipments a carrier takes from a hub on a day.

A bucket is `<carrier>/<hub_id>/<day>`. Reservations and releases for a bucket
are keyed by the bucket, so exactly one stream task owns it and sees its
requests in order; its state (this module's `BucketState`) commits with the
decision in one transaction. One owner + transactional state means two
allocation instances can never both grant the last slot.

Idempotence is per shipment: a shipment holds at most one slot in a bucket.
Asking again returns the same answer without counting twice; releasing a slot
that is not held (or is held under another request) changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
from handoff_events.contracts import CapacityBucket


class BucketState(msgspec.Struct, frozen=True, kw_only=True):
    """The store value of one bucket: its limit at the last decision and who holds a slot."""

    bucket: CapacityBucket
    limit: int
    reserved: dict[str, str] = {}
    """shipment id → the reservation request id that holds the slot."""

    @property
    def remaining(self) -> int:
        return max(self.limit - len(self.reserved), 0)


@dataclass(frozen=True)
class ReservationDecision:
    state: BucketState
    granted: bool
    reason: str | None = None
    """Why refused: bucket_full."""


@dataclass(frozen=True)
class ReleaseDecision:
    state: BucketState
    released: bool


def empty_bucket(bucket: CapacityBucket, limit: int) -> BucketState:
    return BucketState(bucket=bucket, limit=limit, reserved={})


def reserve(
    state: BucketState | None,
    bucket: CapacityBucket,
    limit: int,
    shipment_id: str,
    request_id: str,
) -> ReservationDecision:
    """Grant a slot if one is free (or the shipment already holds one); else refuse.

    `limit` is the configured limit now: lowering it never evicts holders, it
    only refuses new reservations until enough are released.
    """
    current = state or empty_bucket(bucket, limit)
    held = current.reserved.get(shipment_id)
    if held is not None:
        # Same shipment again (a retried request, or a new request for the same bucket):
        # one slot per shipment, remember the latest request id so its release matches.
        reserved = {**current.reserved, shipment_id: request_id}
        return ReservationDecision(
            state=BucketState(bucket=current.bucket, limit=limit, reserved=reserved),
            granted=True,
        )
    if len(current.reserved) >= limit:
        return ReservationDecision(
            state=BucketState(bucket=current.bucket, limit=limit, reserved=current.reserved),
            granted=False,
            reason="bucket_full",
        )
    reserved = {**current.reserved, shipment_id: request_id}
    return ReservationDecision(
        state=BucketState(bucket=current.bucket, limit=limit, reserved=reserved), granted=True
    )


def release(
    state: BucketState | None,
    bucket: CapacityBucket,
    limit: int,
    shipment_id: str,
    request_id: str,
) -> ReleaseDecision:
    """Free the shipment's slot if it is held under `request_id` (the reservation's id)."""
    current = state or empty_bucket(bucket, limit)
    if current.reserved.get(shipment_id) != request_id:
        return ReleaseDecision(
            state=BucketState(bucket=current.bucket, limit=limit, reserved=current.reserved),
            released=False,
        )
    reserved = {k: v for k, v in current.reserved.items() if k != shipment_id}
    return ReleaseDecision(
        state=BucketState(bucket=current.bucket, limit=limit, reserved=reserved), released=True
    )
