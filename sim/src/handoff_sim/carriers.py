"""Simulated carriers: nordpost, swift, velo and gigly scanning the parcels allocated to them.

Each carrier speaks its own status vocabulary, loaded from its code table
(`deploy/config/carrier-codes/<carrier>.toml`): a journey is planned in
canonical steps (picked up, hub scans, out for delivery, delivered with proof;
failed attempts and reattempts; exceptions; returns to sender) and every step
becomes the carrier's own code for that status and sub-status. A step the
carrier has no code for is simply not scanned (velo's bikes have no hubs).

- **Pure planning** (`plan_journey`, `plan_scans`): from a `random.Random`
  seeded with `<seed>:<carrier>:<tracking number>`, so the same parcel gets the
  same scans in every run. Times are simulated hours after the allocation;
  a few scans arrive late (emitted hours after they occurred, after later
  scans) and a few are sent twice (same `event_id`).
- **The runner** (`CarrierSimulator`): follows
  `handoff.carrier_allocation.allocations.v1` (`CarrierAllocated` for a
  carrier it simulates; `AllocationReleased` stops the scans of a cancelled
  shipment) and emits the scans over compressed time (`time_scale` simulated
  seconds per real second; 3600 = one simulated hour per second). `occurred_at`
  is simulated time, anchored at the allocation, so transit times and KPIs look
  like real ones. Carriers integrated by topic (nordpost, velo) produce to
  `handoff.carrier.tracking.v1`; the others (swift, gigly) post batches to the
  tracking service's signed webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import itertools
import os
import random
import time
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from handoff_events import topics
from handoff_events.contracts import AllocationReleased, CarrierAllocated, CarrierTrackingEvent
from handoff_events.envelope import DecodeError, decode, encode, new_envelope
from handoff_events.ids import digest, event_id
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.publisher import producer_defaults
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.topics import Names
from handoff_events.values import Location, Proof

from handoff_sim.world import CarrierCodes, StatusCode, load_all_carrier_codes

log = get_logger("handoff.sim.carriers")
Integration = Literal["topic", "webhook"]
Outcome = Literal[
    "delivered", "reattempted", "collected", "delayed", "returned", "lost", "damaged_returned"
]

# How each simulated carrier reaches Handoff: posts and couriers with a Kafka
# integration produce to the topic, the app-based fleets call the webhook.
DEFAULT_INTEGRATIONS: Mapping[str, Integration] = {
    "nordpost": "topic",
    "velo": "topic",
    "swift": "webhook",
    "gigly": "webhook",
}
_FIRST_NAMES = ("A. Muster", "J. Jansen", "M. Weber", "S. de Vries", "L. Fischer", "K. Smit")


@dataclass(frozen=True)
class CarrierProfile:
    """How often things go wrong for one carrier (probabilities per parcel)."""

    failed_attempt: float = 0.08
    """First attempt fails (recipient absent …), delivered at the reattempt."""
    collected: float = 0.03
    """Attempts fail, the parcel waits at a pickup point, the customer collects it."""
    delayed: float = 0.05
    """An exception (weather, capacity, delay) holds the parcel for a while."""
    returned: float = 0.02
    """Refused or undeliverable: back to the sender."""
    lost: float = 0.004
    late_scan: float = 0.04
    """A scan reaches Handoff hours after it happened (after later scans)."""
    duplicate_scan: float = 0.03
    """A scan is sent twice."""
    speed: float = 1.0
    """Multiplier on every leg's duration (a gig fleet is quick, a post is slower)."""


DEFAULT_PROFILES: Mapping[str, CarrierProfile] = {
    "nordpost": CarrierProfile(failed_attempt=0.06, delayed=0.06, speed=1.15),
    "swift": CarrierProfile(failed_attempt=0.07, delayed=0.03, speed=0.9),
    "velo": CarrierProfile(failed_attempt=0.1, delayed=0.02, returned=0.01, speed=0.7),
    "gigly": CarrierProfile(failed_attempt=0.12, delayed=0.04, duplicate_scan=0.06, speed=0.7),
}


@dataclass(frozen=True)
class Step:
    """One canonical step of a journey, `at_h` simulated hours after the allocation."""

    at_h: float
    status: str
    sub_status: str | None = None
    attempt: int = 0
    """For repeated steps (failed attempts): 0 for the first, 1 for the second …"""
    proof: bool = False


@dataclass(frozen=True)
class PlannedScan:
    emit_h: float
    """When the carrier sends it (simulated hours after the allocation)."""
    event: CarrierTrackingEvent
    late: bool = False
    duplicate: bool = False


# ---- pure planning ------------------------------------------------------------------------

# Simulated hours from the allocation to the first delivery attempt, by service level.
_FIRST_ATTEMPT_H: Mapping[str, tuple[float, float]] = {
    "same_day": (3.0, 6.0),
    "next_day": (18.0, 24.0),
    "two_day": (40.0, 48.0),
    "standard": (44.0, 72.0),
    "pickup_point": (44.0, 72.0),
}


def _outcome(rng: random.Random, profile: CarrierProfile) -> Outcome:
    draw = rng.random()
    for outcome, chance in (
        ("lost", profile.lost),
        ("returned", profile.returned),
        ("collected", profile.collected),
        ("reattempted", profile.failed_attempt),
        ("delayed", profile.delayed),
    ):
        if draw < chance:
            return outcome  # type: ignore[return-value]
        draw -= chance
    return "delivered"


def plan_journey(
    rng: random.Random, service_level: str, profile: CarrierProfile = CarrierProfile()
) -> tuple[Outcome, list[Step]]:
    """The canonical steps of one parcel's journey, in the order they happen."""
    outcome = _outcome(rng, profile)
    low, high = _FIRST_ATTEMPT_H.get(service_level, _FIRST_ATTEMPT_H["standard"])
    first_attempt = rng.uniform(low, high) * profile.speed
    pickup = min(first_attempt * 0.25, rng.uniform(1.0, 5.0)) * profile.speed
    steps = [
        Step(0.05, "allocated", "info_received"),
        Step(pickup, "picked_up", rng.choice(("collected_from_sender", "collected_from_sender",
                                               "dropped_off_by_sender"))),
    ]  # fmt: skip
    # Hub scans spread over the line haul: in and out of the sorting centre, then the depot.
    haul = first_attempt - pickup
    for fraction, sub in ((0.2, "arrived_at_facility"), (0.35, "departed_facility"),
                          (0.75, "arrived_at_facility")):  # fmt: skip
        steps.append(Step(pickup + haul * fraction, "in_transit", sub))
    at = first_attempt
    if outcome == "delayed":
        steps.append(Step(pickup + haul * 0.5, "exception",
                          rng.choice(("delayed", "weather", "capacity"))))  # fmt: skip
        at += rng.uniform(12.0, 30.0)
        steps.append(Step(at - 6.0, "in_transit", "arrived_at_facility"))
    if outcome == "lost":
        steps.append(Step(pickup + haul * 0.9, "exception", "lost"))
        return outcome, sorted(steps, key=lambda s: s.at_h)
    if service_level == "pickup_point":
        steps.append(Step(at, "available_for_pickup", "at_pickup_point"))
        steps.append(Step(at + rng.uniform(4.0, 40.0), "delivered", "delivered_to_recipient",
                          proof=True))  # fmt: skip
        return outcome, steps
    failures = {"reattempted": 1, "collected": 2, "returned": 2}.get(outcome, 0)
    for attempt in range(failures):
        steps.append(Step(at - rng.uniform(2.0, 4.0), "out_for_delivery"))
        reason = (
            "refused"
            if outcome == "returned" and attempt == 0 and rng.random() < 0.5
            else rng.choice(("recipient_absent", "recipient_absent", "access_restricted"))
        )
        steps.append(Step(at, "delivery_attempt_failed", reason, attempt=attempt))
        at += rng.uniform(20.0, 26.0)  # the next working day
    if outcome == "collected":
        steps.append(Step(at - 20.0, "available_for_pickup",
                          rng.choice(("at_pickup_point", "at_depot", "at_locker"))))  # fmt: skip
        steps.append(Step(at + rng.uniform(0.0, 24.0), "delivered", "delivered_to_recipient",
                          proof=True))  # fmt: skip
        return outcome, steps
    if outcome == "returned":
        steps.append(
            Step(at - 18.0, "returning_to_sender", rng.choice(("undeliverable", "refused")))
        )
        steps.append(Step(at + rng.uniform(24.0, 48.0), "returned_to_sender"))
        return outcome, steps
    steps.append(Step(at - rng.uniform(1.5, 4.0), "out_for_delivery"))
    delivered_sub = rng.choices(
        ("delivered_to_recipient", "delivered_to_neighbour", "delivered_to_safe_place",
         "delivered_to_locker"), weights=(70, 15, 10, 5),
    )[0]  # fmt: skip
    steps.append(Step(at, "delivered", delivered_sub, proof=True))
    return outcome, sorted(steps, key=lambda s: s.at_h)


def code_for(table: CarrierCodes, step: Step) -> StatusCode | None:
    """The carrier's own code for a canonical step (None: the carrier does not scan it).

    Exact (status, sub-status) first (the n-th such code for the n-th attempt, e.g. swift's
    NH1/NH2), then a code of the status without a sub-status, then any code of the status.
    """
    exact = [c for c in table.codes if c.status == step.status and c.sub_status == step.sub_status]
    if exact:
        return exact[min(step.attempt, len(exact) - 1)]
    plain = [c for c in table.codes if c.status == step.status and c.sub_status is None]
    if plain:
        return plain[0]
    return next((c for c in table.codes if c.status == step.status), None)


def _proof(rng: random.Random, sub_status: str | None, tracking_number: str) -> Proof:
    photo = f"photo-{digest('proof', tracking_number, length=12)}.jpg"
    if sub_status == "delivered_to_safe_place":
        return Proof(photo_ref=photo, safe_place=rng.choice(("porch", "garage", "garden shed")))
    if sub_status == "delivered_to_locker":
        return Proof(photo_ref=photo)
    return Proof(signed_by=rng.choice(_FIRST_NAMES), photo_ref=photo)


def plan_scans(
    seed: int,
    table: CarrierCodes,
    tracking_number: str,
    service_level: str,
    allocated_at: datetime,
    profile: CarrierProfile = CarrierProfile(),
    location: Location | None = None,
) -> tuple[Outcome, list[PlannedScan]]:
    """Every scan the carrier sends for one parcel, ordered by when it is sent."""
    rng = random.Random(f"{seed}:{table.carrier}:{tracking_number}")
    outcome, steps = plan_journey(rng, service_level, profile)
    scans: list[PlannedScan] = []
    for index, step in enumerate(steps):
        code = code_for(table, step)
        if code is None:
            continue
        event = CarrierTrackingEvent(
            carrier=table.carrier,
            tracking_number=tracking_number,
            event_id=f"{table.carrier}-{digest(tracking_number, index, code.code, length=12)}",
            code=code.code,
            occurred_at=allocated_at + timedelta(hours=step.at_h),
            description=code.description or None,
            location=location,
            proof=_proof(rng, step.sub_status, tracking_number) if step.proof else None,
        )
        late = rng.random() < profile.late_scan
        # A late scan reaches Handoff hours later, after scans that happened after it.
        emit_h = step.at_h + (rng.uniform(3.0, 12.0) if late else rng.uniform(0.0, 0.2))
        scans.append(PlannedScan(emit_h=emit_h, event=event, late=late))
        if rng.random() < profile.duplicate_scan:
            scans.append(
                PlannedScan(emit_h=emit_h + rng.uniform(0.1, 2.0), event=event, duplicate=True)
            )
    scans.sort(key=lambda s: s.emit_h)
    return outcome, scans


# ---- emission adapters --------------------------------------------------------------------


def _secrets_from_env(spec: str | None) -> dict[str, str]:
    """`HANDOFF_CARRIER_SECRETS` (`carrier:new|old,…`): each carrier signs with its newest."""
    out: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in (spec or "").split(","))):
        carrier, _, values = item.partition(":")
        newest = values.split("|")[0].strip()
        if carrier and newest:
            out[carrier.strip()] = newest
    return out


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`v1=<hex>`: HMAC-SHA256 over `<timestamp>.<raw body>` (docs/integrating-carriers.md)."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"v1={mac.hexdigest()}"


@dataclass
class CarrierStats:
    shipments: Counter[str] = field(default_factory=Counter)
    scans_sent: Counter[str] = field(default_factory=Counter)
    late: int = 0
    duplicates: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    stopped_by_cancellation: int = 0


@dataclass(frozen=True)
class CarrierSimConfig:
    seed: int = 1
    time_scale: float = 3600.0
    """Simulated seconds per real second (3600: one simulated hour per second)."""
    carriers: Mapping[str, Integration] = field(default_factory=lambda: dict(DEFAULT_INTEGRATIONS))
    profiles: Mapping[str, CarrierProfile] = field(default_factory=lambda: dict(DEFAULT_PROFILES))
    tracking_url: str = "http://127.0.0.1:8084"
    carrier_secrets: Mapping[str, str] = field(default_factory=dict)
    """Webhook secret per carrier; default `dev-<carrier>-secret`."""
    config_dir: Path = Path("deploy/config")
    group: str = "handoff.sim.carriers"

    def secret(self, carrier: str) -> str:
        return self.carrier_secrets.get(carrier, f"dev-{carrier}-secret")


class CarrierSimulator:
    def __init__(self, settings: ServiceSettings, config: CarrierSimConfig):
        self.settings = settings
        self.config = config
        self.stats = CarrierStats()
        tables = load_all_carrier_codes(config.config_dir / "carrier-codes")
        missing = sorted(set(config.carriers) - set(tables))
        if missing:
            raise ValueError(f"no code table for simulated carrier(s) {missing}")
        self.tables = {c: tables[c] for c in config.carriers}
        # The allocation names the carrier's service, not the order's level: the catalogue
        # says which level each service serves (e.g. swift `express` = next_day).
        self._levels = load_service_levels(config.config_dir / "carriers")
        self._names = Names(settings.topic_prefix)
        self._producer = AIOKafkaProducer(
            client_id="handoff-sim-carriers", **producer_defaults(settings)
        )
        self._http = httpx.AsyncClient(timeout=10.0)
        self._queue: list[tuple[float, int, str, PlannedScan]] = []
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._released: set[str] = set()
        self._shipment_of: dict[str, str] = {}
        self._seen: set[str] = set()

    def schedule(self, allocated: CarrierAllocated, service_level: str, seen_at: float) -> None:
        """Plan one allocated parcel's scans onto the emission queue (real monotonic times)."""
        if allocated.tracking_number in self._seen:
            return
        self._seen.add(allocated.tracking_number)
        table = self.tables[allocated.carrier]
        profile = self.config.profiles.get(allocated.carrier, CarrierProfile())
        outcome, scans = plan_scans(
            self.config.seed,
            table,
            allocated.tracking_number,
            service_level,
            allocated.allocated_at,
            profile,
        )
        self.stats.shipments[allocated.carrier] += 1
        self.stats.outcomes[outcome] += 1
        self._shipment_of[allocated.tracking_number] = allocated.shipment_id
        for scan in scans:
            due = seen_at + scan.emit_h * 3600.0 / self.config.time_scale
            heapq.heappush(self._queue, (due, next(self._seq), allocated.shipment_id, scan))
        self._wake.set()

    async def _emit_topic(self, carrier: str, scans: Sequence[CarrierTrackingEvent]) -> None:
        now = datetime.now(UTC)
        futures = []
        for scan in scans:
            env = new_envelope(
                scan,
                source=f"carrier/{carrier}",
                tenant_id=carrier,
                # The same id the webhook derives: (carrier, carrier event id).
                id=event_id(CarrierTrackingEvent.ce_type, carrier, scan.event_id),
                time=now,
            )
            value, headers = encode(env)
            futures.append(
                await self._producer.send(
                    self._names(topics.CARRIER_TRACKING),
                    value=value,
                    key=f"{carrier}/{scan.tracking_number}".encode(),
                    headers=headers,
                )
            )
        for fut in futures:
            await fut

    async def _emit_webhook(self, carrier: str, scans: Sequence[CarrierTrackingEvent]) -> None:
        body = msgspec.json.encode(list(scans))
        url = f"{self.config.tracking_url}/v1/carriers/{carrier}/events"
        for attempt in range(8):
            stamp = int(time.time())  # sign each attempt anew: the replay window is 5 minutes
            headers = {
                "Content-Type": "application/json",
                "X-Handoff-Timestamp": str(stamp),
                "X-Handoff-Signature": sign(self.config.secret(carrier), stamp, body),
            }
            try:
                response = await self._http.post(url, content=body, headers=headers)
            except httpx.TransportError as exc:
                log.warning("webhook unreachable", carrier=carrier, error=repr(exc))
            else:
                if response.status_code < 300:
                    return
                if response.status_code < 500:
                    # A carrier does not retry a 4xx: the batch is wrong, not the moment.
                    reason = _reason(response)
                    self.stats.refused[reason] += len(scans)
                    log.warning("webhook refused scans", carrier=carrier, reason=reason,
                                status=response.status_code, scans=len(scans))  # fmt: skip
                    return
            await asyncio.sleep(min(5.0, 0.2 * 2**attempt))
        self.stats.refused["gave_up"] += len(scans)

    async def _emit(self, carrier: str, scans: list[PlannedScan]) -> None:
        events = [s.event for s in scans]
        if self.config.carriers[carrier] == "webhook":
            await self._emit_webhook(carrier, events)
        else:
            await self._emit_topic(carrier, events)
        self.stats.scans_sent[carrier] += len(scans)
        self.stats.late += sum(s.late for s in scans)
        self.stats.duplicates += sum(s.duplicate for s in scans)

    async def emit_due(self, stop: asyncio.Event) -> None:
        """Send scans as they fall due, batched per carrier (one webhook call per batch)."""
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            timeout = 1.0
            if self._queue:
                timeout = max(0.0, min(timeout, self._queue[0][0] - loop.time()))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            due: dict[str, list[PlannedScan]] = {}
            now = loop.time()
            while self._queue and self._queue[0][0] <= now:
                _, _, shipment, scan = heapq.heappop(self._queue)
                if shipment in self._released:
                    continue
                due.setdefault(scan.event.carrier, []).append(scan)
            jobs = []
            for carrier, scans in due.items():
                for start in range(0, len(scans), 200):
                    jobs.append(self._emit(carrier, scans[start : start + 200]))
            for result in await asyncio.gather(*jobs, return_exceptions=True):
                if isinstance(result, Exception):
                    log.warning("scan emission failed", error=repr(result))

    async def follow_allocations(self) -> None:
        consumer = AIOKafkaConsumer(
            self._names(topics.ALLOCATIONS),
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.topic_prefix + self.config.group,
            enable_auto_commit=True,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            **self.settings.kafka_client(),
        )
        await consumer.start()
        accept = frozenset(topics.BY_NAME[topics.ALLOCATIONS].event_types)
        loop = asyncio.get_running_loop()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=1000)
                for records in batch.values():
                    for record in records:
                        try:
                            env = decode(record.value, record.headers, accept)
                        except DecodeError:
                            continue
                        data = env.data
                        if isinstance(data, CarrierAllocated) and data.carrier in self.tables:
                            level = self._levels.get((data.carrier, data.service), "standard")
                            self.schedule(data, level, loop.time())
                        elif (
                            isinstance(data, AllocationReleased)
                            and data.shipment_id not in self._released
                        ):
                            self._released.add(data.shipment_id)
                            self.stats.stopped_by_cancellation += 1
        finally:
            await consumer.stop()

    async def run(self, stop: asyncio.Event | None = None) -> CarrierStats:
        stop = stop or asyncio.Event()
        await self._producer.start()
        follower = asyncio.create_task(self.follow_allocations(), name="carriers-allocations")
        emitter = asyncio.create_task(self.emit_due(stop), name="carriers-emitter")
        try:
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait(
                [waiter, follower, emitter], return_when=asyncio.FIRST_COMPLETED
            )
            waiter.cancel()
            for task in done:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            stop.set()
            follower.cancel()
            for task in (follower, emitter):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await self._producer.stop()
            await self._http.aclose()
        return self.stats


def _reason(response: httpx.Response) -> str:
    with contextlib.suppress(ValueError):
        doc: Any = response.json()
        if isinstance(doc, dict) and isinstance(doc.get("reason"), str):
            return str(doc["reason"])
    return f"http_{response.status_code}"


def load_service_levels(carriers_dir: Path) -> dict[tuple[str, str], str]:
    """(carrier, service code) → service level, from the carrier catalogue's [[services]]."""
    out: dict[tuple[str, str], str] = {}
    for path in sorted(carriers_dir.glob("*.toml")):
        with path.open("rb") as handle:
            doc = tomllib.load(handle)
        for service in doc.get("services", []):
            if isinstance(service, dict) and "code" in service and "service_level" in service:
                out[(path.stem, str(service["code"]))] = str(service["service_level"])
    return out


def secrets_from_environment() -> dict[str, str]:
    return _secrets_from_env(os.environ.get("HANDOFF_CARRIER_SECRETS"))
