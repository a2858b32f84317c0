"""Which notification milestone a shipment update is, and how to tell occurrences apart.

Tracking publishes one `ShipmentUpdate` per milestone; a `status_changed` update
is named by its new status (`out_for_delivery`, `picked_up`, …) because that is
what a customer is told about. An exception can happen more than once with
different causes (late, then stuck), so its occurrence key carries the kind.
"""

from __future__ import annotations

from typing import get_args

from handoff_events.contracts import UPDATE_TYPES, CanonicalStatus, ShipmentUpdate

MILESTONES: frozenset[str] = frozenset(get_args(CanonicalStatus)) | (
    UPDATE_TYPES.keys() - {"status_changed"}
)
"""Every milestone a rule may name: each update milestone of the contract, with status
changes named by their status (so the contract's lists are the only ones to extend)."""


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
