"""Time-based exception detection (pure): carrier silence and missed promises.

Event-borne exceptions (failed attempt, carrier exception, return to sender,
projected lateness) fall out of the fold itself. The two kinds here need a
clock: the stage's timer calls `detect` with `ctx.now` and folds what it finds
like any other event. Each finding has an id derived from (shipment, kind,
anchor) and is skipped once it is in the history, so a restart or a replay never
reports it twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from handoff_events.contracts import TERMINAL_STATUSES, HistoryEntry, ShipmentState

from handoff_tracking.domain.fold import (
    CARRIER_STATUSES,
    DETECTED_TYPE,
    DetectedException,
    FoldInput,
    detected_entry_id,
)

_JUST_AFTER = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ExceptionPolicy:
    stuck_after: timedelta = timedelta(hours=48)
    """Carrier silence after pickup that makes a shipment `stuck`."""


def next_check(state: ShipmentState, policy: ExceptionPolicy) -> datetime | None:
    """The earliest moment `detect` could find something for this state (None: never,
    until another event changes it). The engine's due index hands the state to the
    timer only then, instead of the timer visiting every shipment on every tick.

    It runs for every state a batch changes (the due time is written with the state),
    so it reads the history once, and derives a finding's id (a SHA-256) only when
    the history holds findings at all: an id that is not there cannot match."""
    if state.status in TERMINAL_STATUSES:
        return None
    found, last = _read_history(state)
    moments: list[datetime] = []
    if (
        last is not None
        and state.status in CARRIER_STATUSES
        and not _recorded(found, state, "stuck", last.event_id, last.occurred_at)
    ):
        moments.append(last.occurred_at + policy.stuck_after)
    if state.promised_by is not None and not _recorded(
        found, state, "late", "promise", state.promised_by
    ):
        # `detect` wants now > promised_by: the first moment strictly after it.
        moments.append(state.promised_by + _JUST_AFTER)
    return min(moments, default=None)


def _read_history(state: ShipmentState) -> tuple[set[str], HistoryEntry | None]:
    """In one pass: the ids of the findings already recorded, and the last carrier scan
    (by time, then id). Only findings carry DETECTED_TYPE, so a finding's id is either
    among these or nowhere in the history."""
    found: set[str] = set()
    last: HistoryEntry | None = None
    for entry in state.history:
        if entry.type == DETECTED_TYPE:
            found.add(entry.event_id)
        if entry.carrier_event_id is not None and (
            last is None or (entry.occurred_at, entry.event_id) > (last.occurred_at, last.event_id)
        ):
            last = entry
    return found, last


def _recorded(found: set[str], state: ShipmentState, kind: str, anchor: str, at: datetime) -> bool:
    """Whether the finding (kind, anchor) is among the history's `found` ids."""
    if not found:
        return False
    finding = DetectedException(
        shipment_id=state.shipment_id, kind=kind, anchor=anchor, detected_at=at
    )
    return detected_entry_id(finding) in found


def detect(state: ShipmentState, now: datetime, policy: ExceptionPolicy) -> list[FoldInput]:
    """Exceptions that `now` reveals and the history does not yet record."""
    if state.status in TERMINAL_STATUSES:
        return []
    known, last = _read_history(state)
    found: list[DetectedException] = []
    if (
        last is not None
        and state.status in CARRIER_STATUSES
        and now - last.occurred_at >= policy.stuck_after
    ):
        hours = int(policy.stuck_after.total_seconds() // 3600)
        since = last.occurred_at.isoformat()
        found.append(
            DetectedException(
                shipment_id=state.shipment_id,
                kind="stuck",
                anchor=last.event_id,
                detected_at=now,
                detail=f"no carrier scan for {hours} h since {since}",
            )
        )
    if state.promised_by is not None and now > state.promised_by:
        found.append(
            DetectedException(
                shipment_id=state.shipment_id,
                kind="late",
                anchor="promise",
                detected_at=now,
                detail=f"not delivered by the promise {state.promised_by.isoformat()}",
            )
        )
    return [
        FoldInput(
            event_id=detected_entry_id(d), tenant_id=state.tenant_id, event=d, recorded_at=now
        )
        for d in found
        if detected_entry_id(d) not in known
    ]
