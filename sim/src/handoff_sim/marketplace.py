"""Simulated marketplaces: the load generator that plays acme, globex and northwind.

Two layers:

- **Pure generation** (`generate_orders`, `iter_orders`, `plan_return`): orders
  from a `random.Random(seed)`, so the same seed (and start time) yields the
  same orders, byte for byte. Arrivals follow a daily curve with a morning
  bump and an evening peak, compressed so a simulated day lasts
  `day_length_s` real seconds; each order has a tenant, a service level, one
  or two origins (lines and parcels split between them), a destination in a
  region of the tenant's, and sometimes a planned cancellation or a defect
  (a bad postal code, a missing field) that Handoff must reject.
- **The runner** (`MarketplaceRunner`): sends each planned order when its time
  comes, over the topic `handoff.marketplace.orders.v1` (CloudEvents binary
  mode, key `<tenant>/<order_id>`) or over HTTP `POST /v1/orders` with the
  tenant's API key; sends the planned cancellations; follows
  `handoff.shipments.updates.v1` and requests returns for some delivered
  shipments of its own orders; and appends every input it sent, with what
  Handoff answered, to an oracle JSONL file (for chaos tests and summaries).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from handoff_events import topics
from handoff_events.contracts import (
    OrderCancelled,
    OrderLine,
    OrderPlaced,
    ReturnItem,
    ReturnRequested,
    ShipmentUpdate,
)
from handoff_events.contracts.marketplace import ReturnMethod, ReturnReasonCode, ShipFrom
from handoff_events.envelope import DecodeError, Envelope, decode, encode, new_envelope
from handoff_events.ids import event_id, shipment_id
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.publisher import producer_defaults
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.topics import Names
from handoff_events.values import (
    Address,
    Money,
    Parcel,
    Preferences,
    Requirements,
    ServiceLevel,
)

from handoff_sim.world import MarketplaceWorld, Origin, Region, TenantProfile, load_world

log = get_logger("handoff.sim.marketplace")
T = TypeVar("T")
Channel = Literal["topic", "http"]
Defect = Literal["invalid_postal_code", "missing_field"]

# Relative order intake per local hour of the day: quiet nights, a morning bump,
# a lunch dip, and the evening peak (19-21 h) when people shop from the sofa.
HOURLY_DEMAND: tuple[float, ...] = (
    0.25, 0.15, 0.1, 0.08, 0.08, 0.12, 0.3, 0.6, 0.9, 1.0, 1.0, 1.05,
    1.15, 1.05, 0.95, 0.95, 1.0, 1.15, 1.45, 1.9, 2.1, 1.8, 1.2, 0.6,
)  # fmt: skip
_MEAN_DEMAND = sum(HOURLY_DEMAND) / len(HOURLY_DEMAND)
_PEAK_DEMAND = max(HOURLY_DEMAND)

_FIRST_NAMES = (
    "Ada", "Jonas", "Mia", "Lukas", "Emma", "Noah", "Sofia", "Finn", "Lea", "Daan",
    "Sanne", "Bram", "Fleur", "Mehmet", "Aylin", "Piotr", "Zofia", "Giulia", "Mateo", "Ines",
)  # fmt: skip
_LAST_NAMES = (
    "Muster", "Schmidt", "de Vries", "Jansen", "Bakker", "Weber", "Yilmaz", "Kowalski",
    "Visser", "Fischer", "Rossi", "Meyer", "van Dijk", "Wagner", "Hoffmann", "Smit",
)  # fmt: skip
_STREETS = (
    "Hauptstr.", "Bahnhofstr.", "Gartenweg", "Lindenallee", "Schillerstr.", "Kerkstraat",
    "Dorpsstraat", "Molenweg", "Parkstraat", "Torstr.", "Kastanienallee", "Prinsengracht",
)  # fmt: skip
_INSTRUCTIONS = (None, None, None, "2nd floor", "ring twice", "leave with neighbour", "back door")
_SKUS = tuple(f"SKU-{n:04d}" for n in range(1, 400))
_RETURN_REASONS: tuple[tuple[ReturnReasonCode, float], ...] = (
    ("changed_mind", 5), ("not_as_described", 2), ("damaged", 1), ("wrong_item", 1),
    ("defective", 1), ("other", 0.5),
)  # fmt: skip
_RETURN_METHODS: tuple[tuple[ReturnMethod, float], ...] = (
    ("drop_off", 6), ("locker", 2), ("home_pickup", 2),
)  # fmt: skip
# Business days from placement to the promise: generous enough that a carrier picking up
# the next working day (after a cut-off, over a weekend) still keeps it.
_PROMISE_BUSINESS_DAYS: Mapping[str, int] = {
    "same_day": 1,
    "next_day": 3,
    "two_day": 4,
    "standard": 6,
    "pickup_point": 6,
}
SOURCE_PREFIX = "marketplace/"


@dataclass(frozen=True)
class PlannedCancel:
    offset_s: float
    """Real seconds after the run start at which the cancellation is sent."""
    channel: Channel
    cancelled: OrderCancelled


@dataclass(frozen=True)
class PlannedOrder:
    """One order as the marketplace will send it, and what Handoff should make of it."""

    seq: int
    offset_s: float
    """Real seconds after the run start at which the order is sent."""
    tenant_id: str
    channel: Channel
    order: OrderPlaced
    body: bytes
    """The JSON data as sent (differs from `order` when a field was left out)."""
    defect: Defect | None = None
    defect_field: str | None = None
    cancel: PlannedCancel | None = None

    @property
    def origins(self) -> tuple[str, ...]:
        found = [
            p.origin_location_id or self.order.ship_from.location_id for p in self.order.parcels
        ]
        return tuple(dict.fromkeys(found))

    @property
    def expected_shipment_ids(self) -> tuple[str, ...]:
        """One shipment per origin, as order intake derives them (none for a defective order)."""
        if self.defect is not None:
            return ()
        return tuple(shipment_id(self.tenant_id, self.order.order_id, o) for o in self.origins)


# ---- the daily curve ----------------------------------------------------------------------


def demand_at(simulated_hour: float) -> float:
    """Relative demand at a simulated hour of the day, normalised to a mean of 1."""
    hour = simulated_hour % 24.0
    low = int(hour)
    frac = hour - low
    value = HOURLY_DEMAND[low] * (1 - frac) + HOURLY_DEMAND[(low + 1) % 24] * frac
    return value / _MEAN_DEMAND


def arrival_offsets(
    rng: random.Random, orders_per_second: float, day_length_s: float, start_hour: float
) -> Iterator[float]:
    """Arrival times (real seconds from the start) of a Poisson process whose rate follows the
    daily curve: `orders_per_second` on average over a day, more at the evening peak.

    Thinning: draw candidates at the peak rate, keep each with probability demand/peak.
    """
    if orders_per_second <= 0:
        raise ValueError("orders_per_second must be > 0")
    peak_rate = orders_per_second * _PEAK_DEMAND / _MEAN_DEMAND
    hours_per_second = 24.0 / day_length_s
    offset = 0.0
    while True:
        offset += rng.expovariate(peak_rate)
        hour = start_hour + offset * hours_per_second
        if rng.random() * (_PEAK_DEMAND / _MEAN_DEMAND) <= demand_at(hour):
            yield offset


# ---- one order ----------------------------------------------------------------------------


def _weighted(rng: random.Random, options: Sequence[tuple[T, float]]) -> T:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _postal_code(rng: random.Random, region: Region) -> str:
    low, high = rng.choice(region.postal_ranges)
    digits = str(rng.randint(int(low), int(high))).zfill(len(low))
    if region.country == "NL":
        # Dutch codes end in two letters; PostNL never issues SA, SD or SS.
        letters = "ABCEFGHJKLMNPRTVWXZ"
        return f"{digits} {rng.choice(letters)}{rng.choice(letters)}"
    return digits


def _bad_postal_code(rng: random.Random, region: Region) -> str:
    if region.country == "NL":
        return rng.choice(("0123 AB", "12345", "1012 SS", "AB 1234"))
    return rng.choice(("1011", "ABCDE", "101155", "1O115"))


def _add_business_days(day: date, days: int) -> date:
    while days > 0:
        day += timedelta(days=1)
        if day.weekday() < 5:
            days -= 1
    return day


def promise_for(level: ServiceLevel, placed_at: datetime, time_zone: str) -> datetime:
    """The marketplace's delivery promise: 21:00 local, some business days after placement."""
    local = placed_at.astimezone(ZoneInfo(time_zone))
    day = _add_business_days(local.date(), _PROMISE_BUSINESS_DAYS[level])
    return datetime.combine(day, time(21, 0), tzinfo=ZoneInfo(time_zone))


def _parcel(
    rng: random.Random, parcel_id: str, origin: str | None, currency: str, level: ServiceLevel
) -> Parcel:
    # Mostly small parcels: a courier's weight distribution is heavily skewed.
    weight = int(min(20_000, max(80, rng.lognormvariate(math.log(900), 0.75))))
    if level in ("same_day", "pickup_point"):
        weight = min(weight, 8_000)
    length = rng.choice((200, 250, 300, 350, 400, 500, 600))
    return Parcel(
        parcel_id=parcel_id,
        weight_g=weight,
        length_mm=length,
        width_mm=rng.choice((120, 150, 200, 250, 300)),
        height_mm=rng.choice((50, 80, 100, 150, 200)),
        declared_value=Money(amount=rng.randrange(999, 24_999, 100), currency=currency),
        origin_location_id=origin,
    )


def _without(doc: dict[str, Any], path: str) -> dict[str, Any]:
    """A copy of the JSON document with the field at `$.a.b` removed."""
    parts = path.removeprefix("$.").split(".")
    out = json.loads(json.dumps(doc))
    node = out
    for part in parts[:-1]:
        node = node[part]
    node.pop(parts[-1], None)
    return dict(out)


_MISSING_FIELDS = ("$.ship_to.city", "$.ship_to.postal_code", "$.parcels", "$.service_level")


def plan_order(
    rng: random.Random,
    world: MarketplaceWorld,
    seq: int,
    offset_s: float,
    start: datetime,
    seed: int,
) -> PlannedOrder:
    """One order from the RNG's current state (pure: the RNG is the only source of variety)."""
    tenant = _weighted(rng, [(t, t.share) for t in world.tenants])
    placed_at = start + timedelta(seconds=offset_s)
    order_id = f"{tenant.order_prefix}-{seed}-{seq:06d}"
    origin_ids = list(tenant.origins)
    primary = _weighted(rng, [(o, 1.0 / (i + 1)) for i, o in enumerate(origin_ids)])
    origins = [primary]
    if len(origin_ids) > 1 and rng.random() < tenant.multi_origin:
        origins.append(rng.choice([o for o in origin_ids if o != primary]))
    region = world.regions[_weighted(rng, list(tenant.regions))]
    level: ServiceLevel = _weighted(rng, list(tenant.service_levels))
    first: Origin = world.origins[primary]
    if level == "same_day" and (first.city != region.city or len(origins) > 1):
        level = "next_day"  # same-day fleets only ride within the origin's city
    multi = len(origins) > 1
    lines: list[OrderLine] = []
    parcels: list[Parcel] = []
    for index, origin in enumerate(origins):
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            lines.append(
                OrderLine(
                    sku=rng.choice(_SKUS),
                    quantity=rng.choice((1, 1, 1, 2)),
                    origin_location_id=origin if multi else None,
                )
            )
        for n in range(rng.choice((1, 1, 1, 1, 2))):
            parcels.append(
                _parcel(
                    rng, f"P{index + 1}-{n + 1}", origin if multi else None, tenant.currency, level
                )
            )
    given, family = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
    defect: Defect | None = None
    if rng.random() < tenant.invalid:
        defect = rng.choice(("invalid_postal_code", "missing_field"))
    postal = (
        _bad_postal_code(rng, region)
        if defect == "invalid_postal_code"
        else _postal_code(rng, region)
    )
    local_part = f"{given}.{family}".lower().replace(" ", "")
    ship_to = Address(
        name=f"{given} {family}",
        line1=f"{rng.choice(_STREETS)} {rng.randint(1, 180)}",
        city=region.city,
        postal_code=postal,
        country=region.country,
        email=f"{local_part}.{seq}@example.com",
        phone=f"{region.phone_prefix}{rng.randint(1_000_000, 9_999_999)}",
        instructions=rng.choice(_INSTRUCTIONS),
    )
    channels: list[Any] = _weighted(
        rng, [(["email", "sms"], 5), (["email"], 4), (["sms"], 1), ([], 1)]
    )
    requirements = Requirements(
        signature=rng.random() < 0.05, min_age=18 if rng.random() < 0.02 else 0
    )
    order = OrderPlaced(
        order_id=order_id,
        placed_at=placed_at,
        service_level=level,
        promised_by=promise_for(level, placed_at, first.time_zone) if rng.random() < 0.8 else None,
        ship_from=ShipFrom(location_id=primary),
        ship_to=ship_to,
        lines=lines,
        parcels=parcels,
        requirements=requirements,
        preferences=Preferences(channels=channels, locale=tenant.locale),
    )
    body = msgspec.json.encode(order)
    defect_field = None
    if defect == "invalid_postal_code":
        defect_field = "$.ship_to.postal_code"
    elif defect == "missing_field":
        defect_field = rng.choice(_MISSING_FIELDS)
        body = json.dumps(_without(json.loads(body), defect_field)).encode()
    channel: Channel = "http" if tenant.api_key and rng.random() < tenant.http_share else "topic"
    cancel = None
    if defect is None and rng.random() < tenant.cancel:
        delay = rng.uniform(0.5, 6.0)
        partial = multi and rng.random() < 0.5
        cancel = PlannedCancel(
            offset_s=offset_s + delay,
            channel="http" if tenant.api_key and rng.random() < tenant.http_share else "topic",
            cancelled=OrderCancelled(
                order_id=order_id,
                cancelled_at=placed_at + timedelta(seconds=delay),
                reason=rng.choice(("customer_request", "out_of_stock", "payment_failed")),
                origin_location_ids=[origins[-1]] if partial else None,
            ),
        )
    return PlannedOrder(
        seq=seq,
        offset_s=offset_s,
        tenant_id=tenant.tenant_id,
        channel=channel,
        order=order,
        body=body,
        defect=defect,
        defect_field=defect_field,
        cancel=cancel,
    )


def iter_orders(
    seed: int,
    *,
    world: MarketplaceWorld,
    start: datetime,
    orders_per_second: float = 2.0,
    day_length_s: float = 600.0,
    start_hour: float = 17.0,
) -> Iterator[PlannedOrder]:
    """The endless order stream of one seed (arrival times and contents)."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    rng = random.Random(seed)
    # Arrivals get their own stream so the contents of order n do not depend on the rate.
    arrivals = arrival_offsets(
        random.Random(f"{seed}:arrivals"), orders_per_second, day_length_s, start_hour
    )
    for seq, offset in enumerate(arrivals, start=1):
        yield plan_order(rng, world, seq, offset, start, seed)


def generate_orders(
    seed: int,
    n: int,
    *,
    world: MarketplaceWorld | None = None,
    start: datetime = datetime(2026, 11, 20, 16, 0, tzinfo=UTC),
    orders_per_second: float = 2.0,
    day_length_s: float = 600.0,
    start_hour: float = 17.0,
) -> list[PlannedOrder]:
    """The first `n` orders of `seed`: same seed and start, same orders (tests, benchmarks)."""
    stream = iter_orders(
        seed,
        world=world or load_world(),
        start=start,
        orders_per_second=orders_per_second,
        day_length_s=day_length_s,
        start_hour=start_hour,
    )
    return [next(stream) for _ in range(n)]


def plan_return(
    seed: int,
    order: PlannedOrder,
    profile: TenantProfile,
    delivered: ShipmentUpdate,
    requested_at: datetime,
) -> ReturnRequested | None:
    """Whether (and what) the customer returns from a delivered shipment; seeded per shipment,
    so the decision does not depend on the order updates arrive in."""
    rng = random.Random(f"{seed}:return:{delivered.shipment_id}")
    if rng.random() >= profile.return_rate:
        return None
    origin = next(
        (o for o in order.origins if shipment_id(order.tenant_id, order.order.order_id, o)
         == delivered.shipment_id),
        None,
    )  # fmt: skip
    if origin is None:
        return None
    lines = [
        ln
        for ln in order.order.lines
        if (ln.origin_location_id or order.order.ship_from.location_id) == origin
    ]
    if not lines:
        return None
    chosen = rng.sample(lines, k=rng.randint(1, len(lines)))
    return ReturnRequested(
        return_request_id=f"RR-{order.order.order_id}-{origin}",
        order_id=order.order.order_id,
        requested_at=requested_at,
        items=[ReturnItem(sku=ln.sku, quantity=ln.quantity) for ln in chosen],
        reason_code=_weighted(rng, _RETURN_REASONS),
        method=_weighted(rng, _RETURN_METHODS),
        shipment_id=delivered.shipment_id,
    )


# ---- the runner ---------------------------------------------------------------------------


@dataclass
class MarketplaceStats:
    orders_sent: int = 0
    orders_by_channel: dict[str, int] = field(default_factory=lambda: {"topic": 0, "http": 0})
    orders_refused_http: int = 0
    invalid_sent: int = 0
    cancellations_sent: int = 0
    returns_requested: int = 0
    deliveries_seen: int = 0
    send_errors: int = 0


@dataclass(frozen=True)
class MarketplaceConfig:
    seed: int = 1
    orders_per_second: float = 2.0
    duration_s: float | None = None
    """Stop placing orders after this long (None: until stopped)."""
    day_length_s: float = 600.0
    start_hour: float = 17.0
    order_intake_url: str = "http://127.0.0.1:8081"
    returns_url: str = "http://127.0.0.1:8086"
    oracle_path: Path | None = Path(".run/oracle/marketplace.jsonl")
    returns: bool = True
    linger_s: float = 0.0
    """After the last order, keep requesting returns for deliveries this long (or until stopped)."""
    config_dir: Path = Path("deploy/config")
    group: str = "handoff.sim.marketplace"


class Oracle:
    """Appends one JSON line per input the marketplace sent, with Handoff's answer."""

    def __init__(self, path: Path | None):
        self._handle = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = path.open("a", encoding="utf-8")

    def record(self, entry: Mapping[str, Any]) -> None:
        if self._handle is not None:
            self._handle.write(json.dumps(entry, sort_keys=True, default=str) + "\n")
            self._handle.flush()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class MarketplaceRunner:
    def __init__(self, settings: ServiceSettings, config: MarketplaceConfig):
        self.settings = settings
        self.config = config
        self.world = load_world(config.config_dir)
        self.stats = MarketplaceStats()
        self._names = Names(settings.topic_prefix)
        self._producer = AIOKafkaProducer(
            client_id="handoff-sim-marketplace", **producer_defaults(settings)
        )
        self._http = httpx.AsyncClient(timeout=10.0)
        self._oracle = Oracle(config.oracle_path)
        self._orders: dict[tuple[str, str], PlannedOrder] = {}
        self._returned: set[str] = set()

    async def _send_topic(
        self, topic: str, tenant: str, order_id: str, env: Envelope[Any], value: bytes | None = None
    ) -> None:
        """Produce in binary mode, keyed `<tenant>/<order_id>`; `value` replaces the encoded data
        (an order with a field left out is no longer an `OrderPlaced`)."""
        encoded, headers = encode(env)
        await self._producer.send_and_wait(
            self._names(topic),
            value=encoded if value is None else value,
            key=f"{tenant}/{order_id}".encode(),
            headers=headers,
        )

    async def _post(self, url: str, api_key: str, body: bytes) -> httpx.Response:
        headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        for attempt in range(5):
            try:
                response = await self._http.post(url, content=body, headers=headers)
            except httpx.TransportError:
                if attempt == 4:
                    raise
            else:
                if response.status_code != 503:
                    return response
            await asyncio.sleep(0.2 * 2**attempt)
        return response

    def _record(self, kind: str, tenant: str, order_id: str, **facts: Any) -> None:
        self._oracle.record(
            {"kind": kind, "tenant": tenant, "order_id": order_id, "seed": self.config.seed} | facts
        )

    async def place(self, planned: PlannedOrder) -> None:
        order = planned.order
        profile = self.world.tenant(planned.tenant_id)
        status: int | None = None
        ce_id = event_id("sim-order-placed", planned.tenant_id, order.order_id)
        if planned.channel == "http" and profile.api_key:
            response = await self._post(
                f"{self.config.order_intake_url}/v1/orders", profile.api_key, planned.body
            )
            status = response.status_code
            if status == 202:
                ce_id = str(response.json().get("event_id", ce_id))
            else:
                self.stats.orders_refused_http += 1
        else:
            # A body with a field left out is not an OrderPlaced any more: send its raw bytes.
            env = new_envelope(
                order,
                source=SOURCE_PREFIX + planned.tenant_id,
                tenant_id=planned.tenant_id,
                id=ce_id,
                time=order.placed_at,
            )
            await self._send_topic(
                topics.ORDERS, planned.tenant_id, order.order_id, env, value=planned.body
            )
        self.stats.orders_sent += 1
        self.stats.orders_by_channel[planned.channel] += 1
        if planned.defect:
            self.stats.invalid_sent += 1
        else:
            self._orders[(planned.tenant_id, order.order_id)] = planned
        self._record(
            "order_placed",
            planned.tenant_id,
            order.order_id,
            channel=planned.channel,
            event_id=ce_id,
            http_status=status,
            defect=planned.defect,
            defect_field=planned.defect_field,
            service_level=order.service_level,
            origins=list(planned.origins),
            shipment_ids=list(planned.expected_shipment_ids),
            sent_at=datetime.now(UTC).isoformat(),
        )

    async def cancel(self, planned: PlannedOrder, cancel: PlannedCancel) -> None:
        profile = self.world.tenant(planned.tenant_id)
        cancelled = cancel.cancelled
        status = None
        if cancel.channel == "http" and profile.api_key:
            body = msgspec.json.encode(
                {"reason": cancelled.reason, "origin_location_ids": cancelled.origin_location_ids}
            )
            url = f"{self.config.order_intake_url}/v1/orders/{cancelled.order_id}/cancel"
            status = (await self._post(url, profile.api_key, body)).status_code
        else:
            env = new_envelope(
                cancelled,
                source=SOURCE_PREFIX + planned.tenant_id,
                tenant_id=planned.tenant_id,
                id=event_id("sim-order-cancelled", planned.tenant_id, cancelled.order_id),
                time=cancelled.cancelled_at,
            )
            await self._send_topic(topics.ORDERS, planned.tenant_id, cancelled.order_id, env)
        self.stats.cancellations_sent += 1
        self._record(
            "order_cancelled",
            planned.tenant_id,
            cancelled.order_id,
            channel=cancel.channel,
            http_status=status,
            origin_location_ids=cancelled.origin_location_ids,
        )

    async def request_return(self, planned: PlannedOrder, request: ReturnRequested) -> None:
        profile = self.world.tenant(planned.tenant_id)
        status = None
        channel: Channel = "topic"
        if (
            profile.api_key
            and random.Random(request.return_request_id).random() < profile.http_share
        ):
            channel = "http"
            url = f"{self.config.returns_url}/v1/returns"
            body = msgspec.json.encode(request)
            status = (await self._post(url, profile.api_key, body)).status_code
        else:
            env = new_envelope(
                request,
                source=SOURCE_PREFIX + planned.tenant_id,
                tenant_id=planned.tenant_id,
                id=event_id("sim-return-requested", planned.tenant_id, request.return_request_id),
                time=request.requested_at,
            )
            await self._send_topic(topics.RETURN_REQUESTS, planned.tenant_id, request.order_id, env)
        self.stats.returns_requested += 1
        self._record(
            "return_requested",
            planned.tenant_id,
            request.order_id,
            channel=channel,
            http_status=status,
            return_request_id=request.return_request_id,
            shipment_id=request.shipment_id,
        )

    async def _guarded(self, what: str, job: Any) -> None:
        try:
            await job
        except Exception as exc:  # a failed send is counted and logged; the run goes on
            self.stats.send_errors += 1
            log.warning("send failed", what=what, error=repr(exc))

    async def place_orders(self, stop: asyncio.Event) -> None:
        """Send orders (and their cancellations) on schedule until the duration ends or `stop`."""
        loop = asyncio.get_running_loop()
        start = datetime.now(UTC)
        began = loop.time()
        pending: set[asyncio.Task[None]] = set()
        stream = iter_orders(
            self.config.seed,
            world=self.world,
            start=start,
            orders_per_second=self.config.orders_per_second,
            day_length_s=self.config.day_length_s,
            start_hour=self.config.start_hour,
        )
        for planned in stream:
            if self.config.duration_s is not None and planned.offset_s > self.config.duration_s:
                break
            delay = began + planned.offset_s - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
            if stop.is_set():
                break
            task = asyncio.create_task(self._guarded("order", self.place(planned)))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if planned.cancel is not None:
                task = asyncio.create_task(self._cancel_later(planned, began, task))
                pending.add(task)
                task.add_done_callback(pending.discard)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _cancel_later(
        self, planned: PlannedOrder, began: float, placed: asyncio.Task[None]
    ) -> None:
        assert planned.cancel is not None
        await placed  # never cancel before the order itself was sent
        delay = began + planned.cancel.offset_s - asyncio.get_running_loop().time()
        if delay > 0:
            await asyncio.sleep(delay)
        await self._guarded("cancel", self.cancel(planned, planned.cancel))

    async def follow_deliveries(self) -> None:
        """Request returns for some delivered shipments of this marketplace's own orders."""
        consumer = AIOKafkaConsumer(
            self._names(topics.UPDATES),
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.topic_prefix + self.config.group,
            enable_auto_commit=True,
            isolation_level="read_committed",
            # Earliest is safe on a first start: only deliveries of this run's own orders count.
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
            **self.settings.kafka_client(),
        )
        await consumer.start()
        accept = frozenset(topics.BY_NAME[topics.UPDATES].event_types)
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=500)
                for records in batch.values():
                    for record in records:
                        try:
                            env = decode(record.value, record.headers, accept)
                        except DecodeError:
                            continue
                        await self._on_update(env)
        finally:
            await consumer.stop()

    async def _on_update(self, env: Envelope[Any]) -> None:
        update = env.data
        if not isinstance(update, ShipmentUpdate) or update.milestone != "delivered":
            return
        if update.is_return or update.shipment_id in self._returned:
            return
        planned = self._orders.get((update.tenant_id, update.order_id))
        if planned is None:
            return
        self.stats.deliveries_seen += 1
        self._returned.add(update.shipment_id)
        profile = self.world.tenant(planned.tenant_id)
        request = plan_return(self.config.seed, planned, profile, update, datetime.now(UTC))
        if request is not None:
            await self._guarded("return", self.request_return(planned, request))

    async def run(self, stop: asyncio.Event | None = None) -> MarketplaceStats:
        stop = stop or asyncio.Event()
        await self._producer.start()
        follower = None
        if self.config.returns:
            follower = asyncio.create_task(self.follow_deliveries(), name="marketplace-returns")
        try:
            await self.place_orders(stop)
            log.info("orders placed", **_stats_dict(self.stats))
            if follower is not None and not stop.is_set() and self.config.linger_s > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.config.linger_s)
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await follower
            await self._producer.stop()
            await self._http.aclose()
            self._oracle.close()
        return self.stats


def _stats_dict(stats: MarketplaceStats) -> dict[str, Any]:
    return {k: v for k, v in vars(stats).items()}
