"""Realistic shipment states and KPI snapshots for the control tower's tests (no other service needed).

States are built from the contract types the tracking service publishes
(`ShipmentState` with its history, `KpiSnapshot`) and produced in CloudEvents
binary mode exactly like tracking's state codec, keyed by shipment id / kpi key.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from aiokafka import AIOKafkaProducer
from handoff_events import topics
from handoff_events.contracts import (
    DeliveryAttempt,
    ExceptionInfo,
    HistoryEntry,
    KpiSnapshot,
    ShipmentState,
)
from handoff_events.envelope import encode, new_envelope
from handoff_events.values import Location, Money

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
CARRIERS = ("swift", "nordpost", "urbanfleet")
CITIES = (("Berlin", "10115"), ("Hamburg", "20095"), ("Leipzig", "04109"), ("Potsdam", "14467"))
# The lifecycle each seeded shipment walks, up to its final status.
PATH = (
    "requested",
    "quoted",
    "allocated",
    "picked_up",
    "in_transit",
    "out_for_delivery",
    "delivered",
)


CODES = {
    "picked_up": "PU",
    "in_transit": "IT",
    "out_for_delivery": "OFD",
    "delivered": "DL",
    "delivery_attempt_failed": "NH",
    "exception": "DMG",
}


def _entry(n: int, i: int, status: str, at: datetime, carrier: str) -> HistoryEntry:
    city, postal = CITIES[(n + i) % len(CITIES)]
    carrier_scan = status in (
        "picked_up",
        "in_transit",
        "out_for_delivery",
        "delivered",
        "delivery_attempt_failed",
        "exception",
    )
    return HistoryEntry(
        event_id=f"evt_{n}_{i}",
        type="handoff.tracking.observed.v1" if carrier_scan else f"handoff.shipment.{status}.v1",
        occurred_at=at,
        recorded_at=at + timedelta(seconds=3),
        status=status,  # type: ignore[arg-type]
        source=carrier if carrier_scan else "handoff/order_intake",
        description=human(status) if carrier_scan else None,
        location=Location(city=city, postal_code=postal, country="DE") if carrier_scan else None,
        carrier_event_id=f"{carrier}-{n}-{i}" if carrier_scan else None,
        carrier_code=CODES.get(status) if carrier_scan else None,
    )


def human(status: str) -> str:
    return status.replace("_", " ").capitalize()


def shipment_state(n: int, tenant: str = "acme", base: datetime = T0) -> ShipmentState:
    """Shipment number `n` placed around `base`: a deterministic mix of statuses, carriers and
    exceptions (the test passes a `base` a day before now, so waiting times look real)."""
    carrier = CARRIERS[n % len(CARRIERS)]
    final = n % 10
    steps = list(PATH[: 3 + final % 5]) if final < 7 else list(PATH)
    exceptions: list[ExceptionInfo] = []
    attempts: list[DeliveryAttempt] = []
    start = base + timedelta(minutes=7 * n)
    if final == 7:  # a failed attempt, waiting for the next try
        steps = [*PATH[:6], "delivery_attempt_failed"]
    elif final == 8:  # a carrier exception (damaged)
        steps = [*PATH[:5], "exception"]
    history = [
        _entry(n, i, s, start + timedelta(hours=3 * i), carrier) for i, s in enumerate(steps)
    ]
    last = history[-1]
    status = steps[-1]
    if status == "delivery_attempt_failed":
        attempts.append(
            DeliveryAttempt(
                attempted_at=last.occurred_at, outcome="failed", sub_status="recipient_absent"
            )
        )
        exceptions.append(
            ExceptionInfo(
                kind="failed_attempt",
                detected_at=last.occurred_at,
                detail="recipient absent",
                sub_status="recipient_absent",
            )
        )
    if status == "exception":
        exceptions.append(
            ExceptionInfo(
                kind="carrier_exception",
                detected_at=last.occurred_at,
                detail="parcel damaged at hub",
                sub_status="damaged",
            )
        )
    if final == 4:  # in transit and silent: stuck
        exceptions.append(
            ExceptionInfo(
                kind="stuck",
                detected_at=last.occurred_at + timedelta(hours=8),
                detail="no carrier scan for 8 h",
            )
        )
    promised = start + timedelta(hours=20)
    if final in (3, 5) and status not in ("delivered",):
        exceptions.append(ExceptionInfo(kind="late", detected_at=promised, detail="promise missed"))
    delivered_at = last.occurred_at if status == "delivered" else None
    return ShipmentState(
        shipment_id=f"shp_{tenant}_{n:05d}",
        order_id=f"A-{1000 + n}",
        tenant_id=tenant,
        status=status,
        updated_at=last.recorded_at,
        version=len(history),
        service_level="next_day",
        carrier=carrier if len(steps) > 2 else None,
        service=f"{carrier}-standard" if len(steps) > 2 else None,
        tracking_number=f"{carrier[:2].upper()}{100000 + n}" if len(steps) > 2 else None,
        price=Money(amount=690 + 37 * (n % 9), currency="EUR") if len(steps) > 2 else None,
        placed_at=start,
        promised_by=promised,
        picked_up_at=history[3].occurred_at if len(history) > 3 else None,
        delivered_at=delivered_at,
        attempts=attempts,
        exceptions=exceptions,
        history=history,
        lane="DE-10>DE-14",
        on_time=(delivered_at <= promised) if delivered_at else None,
    )


def kpi_snapshots(day: date = date(2026, 11, 20)) -> list[KpiSnapshot]:
    figures = {  # delivered, on time, first attempt, exceptions, transit h, cost (cents)
        "swift": (240, 229, 221, 6, 22.5, 920),
        "nordpost": (410, 361, 352, 19, 41.0, 505),
        "urbanfleet": (95, 93, 90, 1, 7.5, 1190),
    }
    out = []
    for carrier, (delivered, on_time, first, exc, hours, cost) in figures.items():
        for lane_no, lane in enumerate(("DE-10>DE-10", "DE-10>DE-14")):
            share = delivered // 2 + lane_no * (delivered % 2)
            out.append(
                KpiSnapshot(
                    kpi_key=f"{carrier}/{lane}/acme/{day.isoformat()}",
                    carrier=carrier,
                    lane=lane,
                    tenant_id="acme",
                    day=day,
                    shipments_delivered=share,
                    delivered_on_time=on_time * share // delivered,
                    first_attempt_deliveries=first * share // delivered,
                    exceptions=exc * share // delivered,
                    transit_hours_sum=hours * share,
                    transit_hours_p90=hours * 1.4,
                    cost_total=Money(amount=cost * share, currency="EUR"),
                    computed_at=datetime.combine(day, datetime.min.time(), UTC)
                    + timedelta(hours=23),
                    shipments_with_promise=share,
                )
            )
    return out


async def produce_states(
    producer: AIOKafkaProducer, prefix: str, states: list[ShipmentState]
) -> None:
    topic = prefix + topics.STATE
    for state in states:
        value, headers = encode(
            new_envelope(
                state,
                source="handoff/tracking",
                tenant_id=state.tenant_id,
                id=f"state_{state.shipment_id}_{state.version}",
                time=state.updated_at,
            )
        )
        await producer.send(topic, value, key=state.shipment_id.encode(), headers=headers)
    await producer.flush()


async def produce_kpis(
    producer: AIOKafkaProducer, prefix: str, snapshots: list[KpiSnapshot]
) -> None:
    topic = prefix + topics.KPIS
    for snap in snapshots:
        value, headers = encode(
            new_envelope(
                snap,
                source="handoff/tracking",
                tenant_id=snap.tenant_id,
                id=f"kpi_{snap.kpi_key}",
                time=snap.computed_at,
            )
        )
        await producer.send(topic, value, key=snap.kpi_key.encode(), headers=headers)
    await producer.flush()
