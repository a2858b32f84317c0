"""The JSON documents of the control tower's API (pure): domain objects in, plain dicts out.

Times are RFC 3339 strings; money is `{"amount": <minor units>, "currency": …}`
(the page formats it with the currency's own decimals); rates are fractions
in [0, 1] or null when there is no denominator yet.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec
from handoff_events.contracts import ShipmentState
from handoff_events.envelope import rfc3339

from handoff_control_tower.domain.board import OpenException, QueueEntry, ShipmentBoard
from handoff_control_tower.domain.scorecards import Scorecard
from handoff_control_tower.domain.services import ServiceHistory

IN_FLIGHT = frozenset(
    {
        "allocated",
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivery_attempt_failed",
        "available_for_pickup",
        "exception",
        "returning_to_sender",
    }
)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def _exception(flag: OpenException) -> dict[str, Any]:
    return {"kind": flag.kind, "since": _time(flag.since), "detail": flag.detail}


def summary(
    board: ShipmentBoard,
    cards: list[Scorecard],
    *,
    caught_up: bool,
    records_read: dict[str, int],
    now: datetime,
) -> dict[str, Any]:
    by_status = board.by_status()
    delivered = sum(c.shipments_delivered for c in cards)
    with_promise = sum(c.shipments_with_promise for c in cards)
    on_time = sum(c.delivered_on_time for c in cards)
    first = sum(c.first_attempt_deliveries for c in cards)
    return {
        "generated_at": _time(now),
        "caught_up": caught_up,
        "records_read": records_read,
        "shipments": len(board),
        "tenants": board.tenants(),
        "in_flight": sum(n for s, n in by_status if s in IN_FLIGHT),
        "by_status": [{"status": s, "count": n} for s, n in by_status],
        "exceptions_open": board.queue_size(),
        "exceptions_by_kind": [{"kind": k, "count": n} for k, n in board.queue_by_kind()],
        "last_state_at": _time(board.last_updated_at),
        "kpi": {
            "delivered": delivered,
            "on_time_rate": on_time / with_promise if with_promise else None,
            "first_attempt_rate": first / delivered if delivered else None,
        },
    }


def queue_row(entry: QueueEntry) -> dict[str, Any]:
    return {
        "shipment_id": entry.shipment_id,
        "tenant_id": entry.tenant_id,
        "order_id": entry.order_id,
        "status": entry.status,
        "carrier": entry.carrier,
        "promised_by": _time(entry.promised_by),
        "updated_at": _time(entry.updated_at),
        "since": _time(entry.oldest),
        "kinds": sorted({e.kind for e in entry.exceptions}),
        "exceptions": [_exception(e) for e in entry.exceptions],
    }


def exceptions(board: ShipmentBoard, limit: int) -> dict[str, Any]:
    return {
        "total": board.queue_size(),
        "by_kind": [{"kind": k, "count": n} for k, n in board.queue_by_kind()],
        "items": [queue_row(e) for e in board.exception_queue(limit)],
    }


def shipment(state: ShipmentState, flags: tuple[OpenException, ...]) -> dict[str, Any]:
    """The state as published, its open exceptions, and the history in event-time order."""
    doc: dict[str, Any] = msgspec.to_builtins(state)
    timeline = sorted(state.history, key=lambda h: (h.occurred_at, h.recorded_at, h.event_id))
    return {
        "state": doc,
        "open_exceptions": [_exception(f) for f in flags],
        "timeline": msgspec.to_builtins(timeline),
    }


def carriers(cards: list[Scorecard], active: dict[str, int]) -> dict[str, Any]:
    items = [
        {
            "carrier": c.carrier,
            "delivered": c.shipments_delivered,
            "active_shipments": active.get(c.carrier, 0),
            "on_time_rate": c.on_time_rate,
            "first_attempt_rate": c.first_attempt_rate,
            "exception_rate": c.exception_rate,
            "average_transit_hours": c.average_transit_hours,
            "cost_per_delivery": [
                {"amount": amount, "currency": cur}
                for cur, amount in c.cost_per_delivery_minor().items()
            ],
            "lanes": c.lanes,
            "days": c.days,
        }
        for c in cards
    ]
    # Carriers with shipments on the road but no delivery yet still get a row.
    scored = {c.carrier for c in cards}
    for carrier, count in sorted(active.items()):
        if carrier not in scored:
            items.append(
                {
                    "carrier": carrier,
                    "delivered": 0,
                    "active_shipments": count,
                    "on_time_rate": None,
                    "first_attempt_rate": None,
                    "exception_rate": None,
                    "average_transit_hours": None,
                    "cost_per_delivery": [],
                    "lanes": 0,
                    "days": 0,
                }
            )
    return {"items": items}


def services(histories: list[ServiceHistory], scrape_every_s: float) -> dict[str, Any]:
    items = []
    for h in histories:
        last = h.last
        items.append(
            {
                "name": h.name,
                "url": h.url,
                "up": h.up,
                "error": h.last_error,
                "last_scraped_at": _time(h.last_at),
                "ready": None if last is None else last.ready,
                "records_per_s": round(h.records_per_s, 3),
                "records_total": None if last is None else last.records_total,
                "emitted_total": None if last is None else last.emitted_total,
                "dlq_total": None if last is None else last.dlq_total,
                "lag_total": None if last is None else last.lag_total,
                "lag_by_stage": {} if last is None else dict(sorted(last.lag_by_stage.items())),
                "batch_ms": None if h.batch_ms is None else round(h.batch_ms, 2),
                "series": [
                    [int(p.at.timestamp() * 1000), round(p.records_per_s, 3), p.lag]
                    for p in h.points
                ],
            }
        )
    return {"scrape_every_s": scrape_every_s, "items": items}
