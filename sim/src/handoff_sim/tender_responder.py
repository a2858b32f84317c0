"""Simulated carriers answering tenders, for development, demos and tests.

Two faces of the same behaviour:

- **topic**: consumes `handoff.carrier.tenders.v1` (its own consumer group,
  read_committed) and answers on `handoff.carrier.tender-replies.v1` keyed by
  shipment id, like a carrier integrated by Kafka;
- **HTTP**: a small Starlette app, `POST /tenders` with a TenderRequested JSON,
  answering a `TenderAnswer` JSON, like a carrier integrated by HTTP (allocation's
  tender relay calls it).

Each simulated carrier accepts with a configured probability, may stay silent
(never answers; over HTTP it hangs, then answers 504), and otherwise declines.
Decisions come from an RNG seeded with `<seed>:<tender_id>`, so the same tender
gets the same answer in every run and in any arrival order. Accepted tenders get
a tracking number in the carrier's own format (nordpost `NP` + 9 digits + `DE`,
swift `SW` + 9 digits, velo `VL` + 8 digits, gigly `GG-` + 8 characters) and a
label reference. Tenders for carriers it does not simulate are left alone, and
tenders already past their `respond_by` are not answered.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import msgspec
from aiokafka import AIOKafkaConsumer
from handoff_events import topics
from handoff_events.contracts import (
    Event,
    TenderAccepted,
    TenderAnswer,
    TenderDeclined,
    TenderRequested,
    TenderWithdrawn,
)
from handoff_events.envelope import DecodeError, Envelope, decode, decode_data, new_envelope
from handoff_events.ids import digest, event_id
from handoff_events.runtime.app import run_service
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.topics import Names
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

log = get_logger("handoff.sim.tender_responder")
SOURCE = "handoff-sim/tender-responder"
Decision = Literal["accept", "decline", "silent"]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class CarrierBehaviour:
    accept: float = 0.9
    """Probability of accepting a tender (among the answered ones)."""
    silent: float = 0.0
    """Probability of never answering (checked first)."""
    delay_s: float = 0.0
    """How long the carrier takes to answer."""

    def __post_init__(self) -> None:
        for name in ("accept", "silent"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")
        if self.delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {self.delay_s!r}")


DEFAULT_CARRIERS: Mapping[str, CarrierBehaviour] = {
    "nordpost": CarrierBehaviour(accept=0.95),
    "swift": CarrierBehaviour(accept=0.9),
    "velo": CarrierBehaviour(accept=0.8),
    "gigly": CarrierBehaviour(accept=0.7, silent=0.1),
}


@dataclass(frozen=True)
class ResponderConfig:
    carriers: Mapping[str, CarrierBehaviour] = field(default_factory=lambda: dict(DEFAULT_CARRIERS))
    """The carriers this responder simulates; tenders for others are ignored."""
    seed: int = 7
    topic: bool = True
    """Answer tenders from the topic."""
    http_port: int | None = None
    """Also serve the HTTP variant on this port."""
    http_host: str = "127.0.0.1"
    http_silent_hang_s: float = 30.0
    group: str = "handoff.sim.tender-responder"
    http_only: frozenset[str] = frozenset()
    """Carriers integrated by HTTP (allocation's tendering.toml says `tender_via = "http"`):
    the topic face leaves their tenders alone, so each tender gets one answer, from the
    HTTP face through allocation's relay, as with a real carrier."""


# ---- pure behaviour -----------------------------------------------------------------------


def rng_for(seed: int, tender_id: str) -> random.Random:
    return random.Random(f"{seed}:{tender_id}")


def decide(behaviour: CarrierBehaviour, rng: random.Random) -> Decision:
    if rng.random() < behaviour.silent:
        return "silent"
    return "accept" if rng.random() < behaviour.accept else "decline"


def tracking_number(carrier: str, rng: random.Random) -> str:
    digits = string.digits
    if carrier == "nordpost":
        return "NP" + "".join(rng.choices(digits, k=9)) + "DE"
    if carrier == "swift":
        return "SW" + "".join(rng.choices(digits, k=9))
    if carrier == "velo":
        return "VL" + "".join(rng.choices(digits, k=8))
    if carrier == "gigly":
        return "GG-" + "".join(rng.choices(string.ascii_uppercase + digits, k=8))
    return carrier[:2].upper() + "".join(rng.choices(digits, k=10))


def label_ref(carrier: str, tender_id: str) -> str:
    return f"lbl_{carrier}_{digest('label', carrier, tender_id, length=16)}"


def answer_for(tender: TenderRequested, config: ResponderConfig) -> tuple[Decision, TenderAnswer]:
    """The carrier's answer to a tender it simulates (deterministic per seed and tender)."""
    behaviour = config.carriers[tender.carrier]
    rng = rng_for(config.seed, tender.tender_id)
    decision = decide(behaviour, rng)
    if decision == "accept":
        return decision, TenderAnswer(
            accepted=True,
            tracking_number=tracking_number(tender.carrier, rng),
            label_ref=label_ref(tender.carrier, tender.tender_id),
        )
    return decision, TenderAnswer(accepted=False, reason="no_driver_available")


def reply_event(tender: TenderRequested, answer: TenderAnswer, now: datetime) -> Event:
    if answer.accepted and answer.tracking_number and answer.label_ref:
        return TenderAccepted(
            tender_id=tender.tender_id,
            shipment_id=tender.shipment_id,
            carrier=tender.carrier,
            tracking_number=answer.tracking_number,
            label_ref=answer.label_ref,
            accepted_at=now,
        )
    return TenderDeclined(
        tender_id=tender.tender_id,
        shipment_id=tender.shipment_id,
        carrier=tender.carrier,
        declined_at=now,
        reason=answer.reason or "declined",
    )


# ---- HTTP variant -------------------------------------------------------------------------


def http_app(config: ResponderConfig) -> Starlette:
    """`POST /tenders`: the HTTP face of the simulated carriers."""

    async def tenders(request: Request) -> Response:
        body = await request.body()
        try:
            tender = decode_data(TenderRequested, body)
        except DecodeError as err:
            doc = {
                "title": "Invalid tender",
                "status": 422,
                "reason": err.reason,
                "field": err.field,
            }
            return Response(msgspec.json.encode(doc), 422, media_type="application/problem+json")
        if tender.carrier not in config.carriers:
            doc = {"title": "Unknown carrier", "status": 404, "field": "carrier"}
            return Response(msgspec.json.encode(doc), 404, media_type="application/problem+json")
        decision, answer = answer_for(tender, config)
        behaviour = config.carriers[tender.carrier]
        if decision == "silent":
            await asyncio.sleep(config.http_silent_hang_s)
            return Response(b"", 504)
        if behaviour.delay_s:
            await asyncio.sleep(behaviour.delay_s)
        return Response(msgspec.json.encode(answer), 200, media_type="application/json")

    return Starlette(routes=[Route("/tenders", tenders, methods=["POST"])])


# ---- topic variant ------------------------------------------------------------------------


@dataclass
class ResponderStats:
    accepted: int = 0
    declined: int = 0
    silent: int = 0
    expired: int = 0
    withdrawn: int = 0


class TopicResponder:
    def __init__(
        self,
        settings: ServiceSettings,
        config: ResponderConfig,
        clock: Clock | None = None,
    ):
        self.settings = settings
        self.config = config
        self.clock = clock or (lambda: datetime.now(UTC))
        self.stats = ResponderStats()
        self._names = Names(settings.topic_prefix)
        self._publisher = EventPublisher(settings, client_id="handoff-sim-tender-responder")
        self._accept = frozenset(topics.BY_NAME[topics.TENDERS].event_types)
        self._consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        await self._publisher.start()
        self._consumer = AIOKafkaConsumer(
            self._names(topics.TENDERS),
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            group_id=self.settings.topic_prefix + self.config.group,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            **self.settings.kafka_client(),
        )
        await self._consumer.start()

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        await self._publisher.stop()

    async def _answer(self, envelope: Envelope[Any]) -> None:
        data = envelope.data
        if isinstance(data, TenderWithdrawn):
            if data.carrier in self.config.carriers:
                self.stats.withdrawn += 1
                log.info("tender withdrawn; label voided", tender_id=data.tender_id)
            return
        if not isinstance(data, TenderRequested) or data.carrier not in self.config.carriers:
            return
        if data.carrier in self.config.http_only:
            return  # answered over HTTP (allocation's relay POSTs it to the HTTP face)
        if self.clock() >= data.respond_by:
            self.stats.expired += 1
            return
        decision, answer = answer_for(data, self.config)
        if decision == "silent":
            self.stats.silent += 1
            return
        delay = self.config.carriers[data.carrier].delay_s
        if delay:
            await asyncio.sleep(delay)
        reply = reply_event(data, answer, self.clock())
        if answer.accepted:
            self.stats.accepted += 1
        else:
            self.stats.declined += 1
        await self._publisher.publish(
            topics.TENDER_REPLIES,
            data.shipment_id,
            new_envelope(
                reply,
                source=SOURCE,
                tenant_id=envelope.tenant_id,
                id=event_id(reply.ce_type, data.tender_id, "sim"),
                time=self.clock(),
            ),
        )

    async def run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batch:
                continue
            jobs = []
            for records in batch.values():
                for record in records:
                    try:
                        envelope = decode(record.value, record.headers, self._accept)
                    except DecodeError as err:
                        log.warning("undecodable tender skipped", reason=err.reason)
                        continue
                    jobs.append(self._answer(envelope))
            await asyncio.gather(*jobs)
            await consumer.commit()


async def run_tender_responder(
    settings: ServiceSettings,
    config: ResponderConfig,
    *,
    stop: asyncio.Event | None = None,
    started: asyncio.Event | None = None,
) -> ResponderStats:
    """Run the simulated carriers (topic and/or HTTP) until `stop` is set or cancelled."""
    stop = stop or asyncio.Event()
    responder = TopicResponder(settings, config) if config.topic else None
    tasks: list[asyncio.Task[Any]] = []
    server: Any = None
    try:
        if responder is not None:
            await responder.start()
            tasks.append(asyncio.create_task(responder.run(), name="tender-responder"))
        if config.http_port is not None:
            import uvicorn

            server = uvicorn.Server(
                uvicorn.Config(
                    http_app(config),
                    host=config.http_host,
                    port=config.http_port,
                    log_level="warning",
                    lifespan="off",
                    access_log=False,
                )
            )
            server.install_signal_handlers = lambda: None
            tasks.append(asyncio.create_task(server.serve(), name="tender-responder-http"))
            # uvicorn exposes readiness only as a flag, not as an event to await
            while not server.started:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        if started is not None:
            started.set()
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        for task in done:
            if task is not waiter and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
    finally:
        if server is not None:
            server.should_exit = True
        for task in tasks:
            if task.get_name() == "tender-responder":
                task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if responder is not None:
            await responder.stop()
    return responder.stats if responder is not None else ResponderStats()


# ---- CLI ----------------------------------------------------------------------------------


def parse_carrier(spec: str) -> tuple[str, CarrierBehaviour]:
    """`nordpost` or `nordpost:accept=0.9,silent=0.05,delay=0.2`."""
    name, _, rest = spec.partition(":")
    values: dict[str, float] = {}
    for item in filter(None, rest.split(",")):
        key, _, raw = item.partition("=")
        key = {"delay": "delay_s"}.get(key, key)
        if key not in ("accept", "silent", "delay_s"):
            raise argparse.ArgumentTypeError(f"unknown carrier setting {key!r} in {spec!r}")
        try:
            values[key] = float(raw)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key} must be a number in {spec!r}") from None
    if not name:
        raise argparse.ArgumentTypeError(f"no carrier code in {spec!r}")
    try:
        return name, CarrierBehaviour(**values)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{spec!r}: {exc}") from None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m handoff_sim.tender_responder",
        description="Simulated carriers answering Handoff's tenders (topic and/or HTTP). "
        "Kafka settings come from KAFKA_BOOTSTRAP_SERVERS and HANDOFF_TOPIC_PREFIX.",
    )
    parser.add_argument(
        "--carrier",
        action="append",
        type=parse_carrier,
        metavar="CODE[:accept=P,silent=P,delay=S]",
        help="a carrier to simulate (repeatable); default: nordpost, swift, velo, gigly",
    )
    parser.add_argument("--seed", type=int, default=7, help="RNG seed (default 7)")
    parser.add_argument("--http-port", type=int, default=None, help="also serve POST /tenders")
    parser.add_argument("--http-host", default="127.0.0.1")
    parser.add_argument("--no-topic", action="store_true", help="do not consume the tenders topic")
    parser.add_argument(
        "--http-only",
        action="append",
        default=[],
        metavar="CODE",
        help="a carrier answered only over HTTP, not from the topic (repeatable)",
    )
    args = parser.parse_args(argv)
    carriers = dict(args.carrier) if args.carrier else dict(DEFAULT_CARRIERS)
    config = ResponderConfig(
        carriers=carriers,
        seed=args.seed,
        topic=not args.no_topic,
        http_port=args.http_port,
        http_host=args.http_host,
        http_only=frozenset(args.http_only),
    )
    with contextlib.suppress(KeyboardInterrupt):
        run_service(run_tender_responder(ServiceSettings(), config))


if __name__ == "__main__":
    main()
