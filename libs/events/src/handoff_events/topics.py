"""The topic catalogue: every topic Handoff uses, who writes and reads it, how it is keyed and kept.

Topics are provisioned from this catalogue (`handoff topics provision`), never
auto-created. Every non-DLQ topic has the same partition count, so all
shipment-keyed topics are co-partitioned by construction: one shipment's events
always land in the same partition number of every topic and are handled, in
order, by the one instance that owns that partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from handoff_events.contracts import UPDATE_TYPES

Service = Literal[
    "order_intake", "rate_shopping", "carrier_allocation", "tracking", "notifications", "returns"
]
SERVICES: tuple[Service, ...] = (
    "order_intake",
    "rate_shopping",
    "carrier_allocation",
    "tracking",
    "notifications",
    "returns",
)
External = Literal["marketplace", "carrier"]
Party = Service | External

DEFAULT_PARTITIONS = 12
DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    writers: tuple[Party, ...]
    readers: tuple[Party, ...]
    key: str
    event_types: tuple[str, ...]
    description: str
    cleanup: Literal["delete", "compact"] = "delete"
    retention_ms: int = 7 * DAY_MS
    public: bool = False
    changelog: bool = False
    """A state store's changelog: compacted, read back on restore."""
    dlq_of: str | None = None
    extra_config: dict[str, str] = field(default_factory=dict)

    @property
    def owner(self) -> Party:
        """The one service that owns the topic (the first writer; external topics name the outside party)."""
        return self.writers[0]

    @property
    def dlq(self) -> str:
        return f"{self.name}.dlq"

    def config(self, min_insync_replicas: int) -> dict[str, str]:
        cfg = {
            "cleanup.policy": self.cleanup,
            "retention.ms": str(-1 if self.cleanup == "compact" else self.retention_ms),
            "min.insync.replicas": str(min_insync_replicas),
            "unclean.leader.election.enable": "false",
        }
        if self.cleanup == "compact":
            cfg["min.compaction.lag.ms"] = str(60_000)
            cfg["segment.ms"] = str(6 * 3600 * 1000)
        cfg.update(self.extra_config)
        return cfg


def _updates() -> tuple[str, ...]:
    return tuple(UPDATE_TYPES.values())


_BASE: tuple[TopicSpec, ...] = (
    # ---- public, inbound -------------------------------------------------------------
    TopicSpec(
        name="handoff.marketplace.orders.v1",
        writers=("marketplace", "order_intake"),
        readers=("order_intake",),
        key="<tenant>/<order_id>",
        event_types=("handoff.order.placed.v1", "handoff.order.cancelled.v1"),
        description="Orders and cancellations from marketplaces (order intake's HTTP edge writes here too).",
        public=True,
        retention_ms=14 * DAY_MS,
    ),
    TopicSpec(
        name="handoff.marketplace.returns.v1",
        writers=("marketplace", "returns"),
        readers=("returns",),
        key="<tenant>/<order_id>",
        event_types=("handoff.return.requested.v1",),
        description="Return requests from marketplaces (the returns HTTP edge writes here too).",
        public=True,
        retention_ms=14 * DAY_MS,
    ),
    TopicSpec(
        name="handoff.carrier.tracking.v1",
        writers=("carrier", "tracking"),
        readers=("tracking",),
        key="<carrier>/<tracking_number>",
        event_types=("handoff.carrier.tracking_event.v1",),
        description="Raw tracking events in each carrier's own vocabulary (the signed webhook writes here too).",
        public=True,
        retention_ms=14 * DAY_MS,
    ),
    TopicSpec(
        name="handoff.carrier.tender-replies.v1",
        writers=("carrier", "carrier_allocation"),
        readers=("carrier_allocation",),
        key="<shipment_id>",
        event_types=("handoff.tender.accepted.v1", "handoff.tender.declined.v1"),
        description="Carriers' answers to tenders (the HTTP tender adapter writes replies here too).",
        public=True,
    ),
    # ---- public, outbound ------------------------------------------------------------
    TopicSpec(
        name="handoff.carrier.tenders.v1",
        writers=("carrier_allocation",),
        readers=("carrier",),
        key="<shipment_id>",
        event_types=("handoff.tender.requested.v1", "handoff.tender.withdrawn.v1"),
        description="Tenders offered to carriers, and their withdrawals (carriers integrated by "
        "HTTP get them POSTed by allocation's tender relay).",
        public=True,
    ),
    TopicSpec(
        name="handoff.shipments.updates.v1",
        writers=("tracking",),
        readers=("marketplace", "notifications", "returns", "rate_shopping", "order_intake"),
        key="<shipment_id>",
        event_types=_updates(),
        description="Every milestone of every shipment, for marketplaces.",
        public=True,
        retention_ms=14 * DAY_MS,
    ),
    TopicSpec(
        name="handoff.shipments.state.v1",
        writers=("tracking",),
        readers=("marketplace", "tracking"),
        key="<shipment_id>",
        event_types=("handoff.shipment.state.v1",),
        description=(
            "Compacted: the latest full state of each shipment; also the tracking fold's "
            "changelog. A record with no value (a tombstone) deletes the shipment's state."
        ),
        cleanup="compact",
        public=True,
        changelog=True,
    ),
    # ---- order intake ----------------------------------------------------------------
    TopicSpec(
        name="handoff.order_intake.shipments.v1",
        writers=("order_intake",),
        readers=("rate_shopping", "carrier_allocation", "tracking", "notifications", "returns"),
        key="<shipment_id>",
        event_types=(
            "handoff.shipment.requested.v1",
            "handoff.shipment.rejected.v1",
            "handoff.shipment.cancelled.v1",
            "handoff.shipment.cancellation_refused.v1",
        ),
        description="Order intake's decisions: shipment requested, rejected, cancelled.",
    ),
    TopicSpec(
        name="handoff.order_intake.orders-changelog.v1",
        writers=("order_intake",),
        readers=("order_intake",),
        key="<tenant>/<order_id>",
        event_types=(),
        description="Order intake's idempotency ledger (one record per order).",
        cleanup="compact",
        changelog=True,
    ),
    TopicSpec(
        name="handoff.order_intake.cancellations.v1",
        writers=("order_intake",),
        readers=("order_intake",),
        key="<shipment_id>",
        event_types=("handoff.shipment.cancellation_requested.v1",),
        description="Cancellation requests re-keyed by shipment, decided against the shipment's status.",
    ),
    TopicSpec(
        name="handoff.order_intake.shipment-status-changelog.v1",
        writers=("order_intake",),
        readers=("order_intake",),
        key="<shipment_id>",
        event_types=(),
        description="Order intake's view of each shipment's status (from updates), for cancellation decisions.",
        cleanup="compact",
        changelog=True,
    ),
    # ---- rate shopping ---------------------------------------------------------------
    TopicSpec(
        name="handoff.rate_shopping.quotes.v1",
        writers=("rate_shopping",),
        readers=("carrier_allocation", "tracking"),
        key="<shipment_id>",
        event_types=("handoff.rates.quoted.v1", "handoff.rating.failed.v1"),
        description="Quotes from every eligible carrier, or why none could quote.",
    ),
    # ---- carrier allocation ----------------------------------------------------------
    TopicSpec(
        name="handoff.carrier_allocation.capacity-requests.v1",
        writers=("carrier_allocation",),
        readers=("carrier_allocation",),
        key="<carrier>/<hub_id>/<day>",
        event_types=(
            "handoff.capacity.reservation_requested.v1",
            "handoff.capacity.release_requested.v1",
        ),
        description="Reservation and release requests, keyed by capacity bucket: one owner per bucket.",
    ),
    TopicSpec(
        name="handoff.carrier_allocation.capacity.v1",
        writers=("carrier_allocation",),
        readers=("carrier_allocation",),
        key="<shipment_id>",
        event_types=(
            "handoff.capacity.reserved.v1",
            "handoff.capacity.refused.v1",
            "handoff.capacity.released.v1",
        ),
        description="Capacity decisions, routed back to the shipment's partition.",
    ),
    TopicSpec(
        name="handoff.carrier_allocation.allocations.v1",
        writers=("carrier_allocation",),
        readers=("tracking",),
        key="<shipment_id>",
        event_types=(
            "handoff.carrier.allocated.v1",
            "handoff.tender.failed.v1",
            "handoff.allocation.failed.v1",
            "handoff.allocation.released.v1",
        ),
        description="Allocation decisions with their explanations.",
    ),
    TopicSpec(
        name="handoff.carrier_allocation.shipments-changelog.v1",
        writers=("carrier_allocation",),
        readers=("carrier_allocation",),
        key="<shipment_id>",
        event_types=(),
        description="Allocation's per-shipment state (candidates, tender in flight).",
        cleanup="compact",
        changelog=True,
    ),
    TopicSpec(
        name="handoff.carrier_allocation.buckets-changelog.v1",
        writers=("carrier_allocation",),
        readers=("carrier_allocation",),
        key="<carrier>/<hub_id>/<day>",
        event_types=(),
        description="Capacity buckets: limit, reservations.",
        cleanup="compact",
        changelog=True,
    ),
    # ---- tracking --------------------------------------------------------------------
    TopicSpec(
        name="handoff.tracking.tracking-numbers.v1",
        writers=("tracking",),
        readers=("tracking",),
        key="<carrier>/<tracking_number>",
        event_types=("handoff.tracking.number_assigned.v1",),
        description="Join input: tracking number → shipment id, co-partitioned with carrier events.",
    ),
    TopicSpec(
        name="handoff.tracking.join-changelog.v1",
        writers=("tracking",),
        readers=("tracking",),
        key="<carrier>/<tracking_number>",
        event_types=(),
        description="The join's store: shipment id per tracking number and events held until it is known.",
        cleanup="compact",
        changelog=True,
    ),
    TopicSpec(
        name="handoff.tracking.observations.v1",
        writers=("tracking",),
        readers=("tracking",),
        key="<shipment_id>",
        event_types=("handoff.tracking.observed.v1",),
        description="Carrier scans normalised to canonical statuses, re-keyed by shipment id.",
    ),
    TopicSpec(
        name="handoff.tracking.kpi-contributions.v1",
        writers=("tracking",),
        readers=("tracking",),
        key="<carrier>/<lane>/<tenant>/<day>",
        event_types=("handoff.tracking.kpi_contribution.v1",),
        description="Repartition: each delivered shipment's KPI figures, keyed by KPI bucket.",
    ),
    TopicSpec(
        name="handoff.tracking.kpis-changelog.v1",
        writers=("tracking",),
        readers=("tracking",),
        key="<carrier>/<lane>/<tenant>/<day>",
        event_types=(),
        description="The KPI stage's store: per bucket, the contribution of each delivered shipment.",
        cleanup="compact",
        changelog=True,
    ),
    TopicSpec(
        name="handoff.tracking.kpis.v1",
        writers=("tracking",),
        readers=("rate_shopping", "carrier_allocation", "marketplace"),
        key="<carrier>/<lane>/<tenant>/<day>",
        event_types=("handoff.kpi.snapshot.v1",),
        description="Delivery KPIs per carrier, lane, tenant and day (compacted).",
        cleanup="compact",
    ),
    # ---- notifications ---------------------------------------------------------------
    TopicSpec(
        name="handoff.notifications.outcomes.v1",
        writers=("notifications",),
        readers=("tracking",),
        key="<shipment_id>",
        event_types=(
            "handoff.notification.sent.v1",
            "handoff.notification.failed.v1",
            "handoff.notification.dead_lettered.v1",
        ),
        description="What was sent to whom (recipient hashed), failures and dead letters.",
    ),
    TopicSpec(
        name="handoff.notifications.ledger-changelog.v1",
        writers=("notifications",),
        readers=("notifications",),
        key="<shipment_id>",
        event_types=(),
        description="Notifications sent and pending retries per shipment (exactly one per milestone and channel).",
        cleanup="compact",
        changelog=True,
    ),
    # ---- returns ---------------------------------------------------------------------
    TopicSpec(
        name="handoff.returns.returns.v1",
        writers=("returns",),
        readers=("tracking", "returns"),
        key="<shipment_id>",
        event_types=(
            "handoff.return.authorised.v1",
            "handoff.return.refused.v1",
            "handoff.return.received.v1",
            "handoff.return.refund_eligible.v1",
            "handoff.return.expired.v1",
        ),
        description="Return decisions, keyed by the original shipment so its events stay ordered.",
    ),
    TopicSpec(
        name="handoff.returns.shipments.v1",
        writers=("returns",),
        readers=("rate_shopping", "carrier_allocation", "tracking"),
        key="<shipment_id>",
        event_types=("handoff.shipment.requested.v1",),
        description="Reverse shipments (customer → return centre), rated and allocated like any other.",
    ),
    TopicSpec(
        name="handoff.returns.ledger-changelog.v1",
        writers=("returns",),
        readers=("returns",),
        key="<shipment_id>",
        event_types=(),
        description="Returns' knowledge per shipment: delivered when, RMAs issued.",
        cleanup="compact",
        changelog=True,
    ),
    TopicSpec(
        name="handoff.returns.requests-by-shipment.v1",
        writers=("returns",),
        readers=("returns",),
        key="<shipment_id>",
        event_types=("handoff.return.requested.v1", "handoff.return.shipment_linked.v1"),
        description="Return requests re-keyed from the order to the shipment they return, and "
        "RMA terms re-keyed to the return shipment id (joins with that shipment's updates).",
    ),
    TopicSpec(
        name="handoff.returns.order-shipments.v1",
        writers=("returns",),
        readers=("returns",),
        key="<tenant>/<order_id>",
        event_types=("handoff.return.shipment_indexed.v1",),
        description="Each order's shipments (id, origin, skus) re-keyed by order, so a return "
        "request that names no shipment can be routed.",
        retention_ms=30 * DAY_MS,
    ),
    TopicSpec(
        name="handoff.returns.orders-changelog.v1",
        writers=("returns",),
        readers=("returns",),
        key="<tenant>/<order_id>",
        event_types=(),
        description="Returns' per-order index: the order's shipments and the requests routed.",
        cleanup="compact",
        changelog=True,
    ),
)


def _with_dlqs(base: tuple[TopicSpec, ...]) -> tuple[TopicSpec, ...]:
    out = list(base)
    for spec in base:
        consumers = tuple(r for r in spec.readers if r not in ("marketplace", "carrier"))
        if not consumers or spec.changelog:
            continue
        out.append(
            TopicSpec(
                name=spec.dlq,
                writers=consumers,
                readers=(),
                key="same as the source record",
                event_types=(),
                description=f"Records of {spec.name} that could not be decoded or validated, "
                "with the original bytes and headers plus the reason.",
                retention_ms=30 * DAY_MS,
                dlq_of=spec.name,
            )
        )
    return tuple(out)


CATALOGUE: tuple[TopicSpec, ...] = _with_dlqs(_BASE)
BY_NAME: dict[str, TopicSpec] = {t.name: t for t in CATALOGUE}

ORDERS = "handoff.marketplace.orders.v1"
RETURN_REQUESTS = "handoff.marketplace.returns.v1"
CARRIER_TRACKING = "handoff.carrier.tracking.v1"
TENDER_REPLIES = "handoff.carrier.tender-replies.v1"
TENDERS = "handoff.carrier.tenders.v1"
UPDATES = "handoff.shipments.updates.v1"
STATE = "handoff.shipments.state.v1"
INTAKE_SHIPMENTS = "handoff.order_intake.shipments.v1"
CANCELLATIONS = "handoff.order_intake.cancellations.v1"
QUOTES = "handoff.rate_shopping.quotes.v1"
CAPACITY_REQUESTS = "handoff.carrier_allocation.capacity-requests.v1"
CAPACITY = "handoff.carrier_allocation.capacity.v1"
ALLOCATIONS = "handoff.carrier_allocation.allocations.v1"
TRACKING_NUMBERS = "handoff.tracking.tracking-numbers.v1"
OBSERVATIONS = "handoff.tracking.observations.v1"
KPIS = "handoff.tracking.kpis.v1"
KPI_CONTRIBUTIONS = "handoff.tracking.kpi-contributions.v1"
KPIS_CHANGELOG = "handoff.tracking.kpis-changelog.v1"
NOTIFICATION_OUTCOMES = "handoff.notifications.outcomes.v1"
RETURNS = "handoff.returns.returns.v1"
RETURN_SHIPMENTS = "handoff.returns.shipments.v1"
RETURN_REQUESTS_BY_SHIPMENT = "handoff.returns.requests-by-shipment.v1"
RETURN_ORDER_SHIPMENTS = "handoff.returns.order-shipments.v1"


def partitions_for(spec: TopicSpec, partitions: int) -> int:
    """DLQs are low-volume and unordered: one partition. Everything else is co-partitioned."""
    return 1 if spec.dlq_of else partitions


def reads(service: Service) -> tuple[TopicSpec, ...]:
    return tuple(t for t in CATALOGUE if service in t.readers)


def writes(service: Service) -> tuple[TopicSpec, ...]:
    return tuple(t for t in CATALOGUE if service in t.writers)


@dataclass(frozen=True)
class Names:
    """Resolves catalogue names under an optional prefix (isolated test runs, shared clusters)."""

    prefix: str = ""

    def __call__(self, name: str) -> str:
        if name.removesuffix(".dlq") not in BY_NAME and name not in BY_NAME:
            raise KeyError(f"{name!r} is not in the topic catalogue")
        return self.prefix + name

    def group(self, service: str, stage: str = "main") -> str:
        return f"{self.prefix}handoff.{service}.{stage}"

    def unprefixed(self, topic: str) -> str:
        return topic.removeprefix(self.prefix)
