"""Which notification milestone a shipment update is, and how to tell occurrences apart.

Tracking publishes one `ShipmentUpdate` per milestone; a `status_changed` update
is named by its new status (`out_for_delivery`, `picked_up`, …) because that is
what a customer is told about. An exception can happen more than once with
different causes (late, then stuck), so its occurrence key carries the kind.
"""

from __future__ import annotations

from handoff_events.contracts import ShipmentUpdate

MILESTONES: tuple[str, ...] = (
    "requested",
    "rejected",
    "quoted",
    "allocated",
    "allocation_failed",
    "cancelled",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivery_attempt_failed",
    "available_for_pickup",
    "returning_to_sender",
    "returned_to_sender",
    "exception",
    "delivered",
    "return_authorised",
    "return_refused",
    "return_received",
    "refund_eligible",
    "return_expired",
)
"""Every milestone a rule may name (update milestones, with status changes by status)."""


def milestone_of(update: ShipmentUpdate) -> str:
    """The rule-level milestone: a status change is named by the status it moved to."""
    if update.milestone == "status_changed":
        return update.status
    return update.milestone


def occurrence_of(update: ShipmentUpdate) -> str:
    """What 'the same milestone' means for exactly-once: exceptions are told apart by kind."""
    milestone = milestone_of(update)
    if milestone == "exception" and update.exception is not None:
        return f"exception.{update.exception.kind}"
    return milestone
