"""The HTTP tender relay: carriers integrated by HTTP get their tenders POSTed.

Choice (documented in the service README): the relay does NOT apply a carrier's
synchronous answer to the allocation state. It reads the tenders topic like any
topic-integrated carrier would (its own consumer group, read_committed), POSTs
each tender for an HTTP carrier, and publishes the answer as a `TenderAccepted`
or `TenderDeclined` on `handoff.carrier.tender-replies.v1` keyed by shipment id.
The shipments stage then folds it like any other reply. So:

- the fold stays a deterministic function of recorded events (a replay never
  calls a carrier), and a slow carrier never stalls a partition;
- the deadline still applies: an answer that arrives after `respond_by` is a
  late reply and is ignored (a late acceptance is withdrawn);
- delivery is at-least-once (offsets are committed after the replies are
  acknowledged); a duplicate reply is ignored by the fold; reply ids are derived
  from the tender id, so duplicates also carry the same id.

Wire protocol: `POST <tender_url>` with the TenderRequested JSON and an
`Idempotency-Key: <tender_id>` header; the carrier answers 200 with a
`TenderAnswer` JSON. 4xx and an invalid answer are a decline; transport errors,
timeouts and 5xx are retried `retries` times with exponential backoff, then
declined as `carrier_unreachable` (moving on beats waiting for the deadline).

At most `max_in_flight` POSTs are open at once (and the client keeps that many
connections alive): a batch of 200 tenders fired all at once opened ~100 new
connections per batch, which cost ~8 ms of CPU per tender in httpx and, on a busy
host, overflowed the carrier's accept queue (`ConnectError`, then a decline).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer
from handoff_events import topics
from handoff_events.contracts import (
    Event,
    TenderAccepted,
    TenderAnswer,
    TenderDeclined,
    TenderRequested,
)
from handoff_events.envelope import DecodeError, Envelope, decode, new_envelope
from handoff_events.ids import event_id
from handoff_events.runtime.logging import get_logger
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.runtime.settings import ServiceSettings
from handoff_events.topics import Names

from handoff_carrier_allocation.adapters.config import HttpTenderRoute, TenderRoutes

log = get_logger("handoff.carrier_allocation.http_tenders")
SOURCE = "handoff/carrier_allocation/http-tenders"
_answer_decoder = msgspec.json.Decoder(TenderAnswer)
_encoder = msgspec.json.Encoder()
Clock = Callable[[], datetime]


def reply_from_answer(tender: TenderRequested, answer: TenderAnswer, now: datetime) -> Event:
    """A carrier's HTTP answer as the reply event the fold understands."""
    if answer.accepted and answer.tracking_number and answer.label_ref:
        return TenderAccepted(
            tender_id=tender.tender_id,
            shipment_id=tender.shipment_id,
            carrier=tender.carrier,
            tracking_number=answer.tracking_number,
            label_ref=answer.label_ref,
            accepted_at=now,
        )
    reason = answer.reason or "declined"
    if answer.accepted:
        reason = "invalid_answer: accepted without tracking_number and label_ref"
    return TenderDeclined(
        tender_id=tender.tender_id,
        shipment_id=tender.shipment_id,
        carrier=tender.carrier,
        declined_at=now,
        reason=reason,
    )


def _declined(tender: TenderRequested, reason: str, now: datetime) -> Event:
    return TenderDeclined(
        tender_id=tender.tender_id,
        shipment_id=tender.shipment_id,
        carrier=tender.carrier,
        declined_at=now,
        reason=reason,
    )


async def tender_over_http(
    client: httpx.AsyncClient,
    route: HttpTenderRoute,
    tender: TenderRequested,
    clock: Clock,
    backoff_s: float = 0.2,
) -> Event:
    """POST one tender within the retry budget; always returns a reply event."""
    body = _encoder.encode(tender)
    headers = {"content-type": "application/json", "idempotency-key": tender.tender_id}
    last_error = "carrier_unreachable"
    for attempt in range(route.retries + 1):
        if attempt:
            await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
        try:
            response = await client.post(
                route.url, content=body, headers=headers, timeout=route.timeout_s
            )
        except httpx.HTTPError as exc:
            last_error = f"carrier_unreachable: {type(exc).__name__}"
            continue
        if response.status_code >= 500:
            last_error = f"carrier_unreachable: HTTP {response.status_code}"
            continue
        if response.status_code >= 400:
            return _declined(tender, f"http_{response.status_code}", clock())
        try:
            answer = _answer_decoder.decode(response.content)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            return _declined(tender, f"invalid_answer: {str(exc)[:120]}", clock())
        return reply_from_answer(tender, answer, clock())
    return _declined(tender, last_error, clock())


class HttpTenderRelay:
    """Consumes tenders for HTTP carriers, asks them, publishes their answers."""

    def __init__(
        self,
        settings: ServiceSettings,
        routes: TenderRoutes,
        publisher: EventPublisher | None = None,
        client: httpx.AsyncClient | None = None,
        clock: Clock | None = None,
        max_in_flight: int = 16,
    ):
        self._settings = settings
        self._max_in_flight = max_in_flight
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self._routes = routes
        # created in start(): aiokafka clients need the running event loop
        self._publisher = publisher
        self._own_publisher = publisher is None
        self._client = client
        self._own_client = client is None
        self._clock = clock or (lambda: datetime.now(UTC))
        self._names = Names(settings.topic_prefix)
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task[None] | None = None
        self._accept = frozenset(topics.BY_NAME[topics.TENDERS].event_types)

    async def start(self) -> None:
        if not self._routes.http:
            return
        if self._client is None:
            limit = self._max_in_flight
            self._client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=limit, max_keepalive_connections=limit)
            )
        if self._publisher is None:
            self._publisher = EventPublisher(
                settings=self._settings, client_id="carrier_allocation-http-tenders"
            )
            await self._publisher.start()
        self._consumer = AIOKafkaConsumer(
            self._names(topics.TENDERS),
            bootstrap_servers=self._settings.kafka_bootstrap_servers,
            group_id=self._names.group("carrier_allocation", "http-tenders"),
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self._settings.fetch_max_wait_ms,
            **self._settings.kafka_client(),
        )
        await self._consumer.start()
        self._task = asyncio.create_task(self._run(), name="http-tender-relay")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None
        if self._client is not None and self._own_client:
            await self._client.aclose()
            self._client = None
        if self._own_publisher and self._publisher is not None:
            await self._publisher.stop()
            self._publisher = None

    async def _ask(self, envelope: Envelope[Any]) -> tuple[str, str, Envelope[Any]] | None:
        tender = envelope.data
        if not isinstance(tender, TenderRequested):
            return None
        route = self._routes.http.get(tender.carrier)
        if route is None or self._client is None:
            return None  # a topic-integrated carrier answers by itself
        if self._clock() >= tender.respond_by:
            return None  # expired while we were away: allocation has moved on
        async with self._in_flight:
            if self._clock() >= tender.respond_by:
                return None  # expired while waiting for a free connection
            reply = await tender_over_http(self._client, route, tender, self._clock)
        out = new_envelope(
            reply,
            source=SOURCE,
            tenant_id=envelope.tenant_id,
            id=event_id(reply.ce_type, tender.tender_id, "http"),
            time=self._clock(),
        )
        return topics.TENDER_REPLIES, tender.shipment_id, out

    async def _run(self) -> None:
        assert self._consumer is not None
        consumer = self._consumer
        while True:
            try:
                await self._relay_batch(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Kafka hiccup while publishing or committing: go back to the last committed
                # offsets and ask again (carriers see the same Idempotency-Key).
                log.warning("tender relay batch failed; retrying", error=repr(exc))
                await asyncio.sleep(1.0)
                for tp in consumer.assignment():
                    committed = await consumer.committed(tp)
                    if committed is None:
                        await consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, committed)

    async def _relay_batch(self, consumer: AIOKafkaConsumer) -> None:
        batch = await consumer.getmany(timeout_ms=200, max_records=200)
        if not batch:
            return
        asks = []
        for records in batch.values():
            for record in records:
                try:
                    envelope = decode(record.value, record.headers, self._accept)
                except DecodeError as err:
                    log.warning("undecodable tender skipped", reason=err.reason)
                    continue
                asks.append(self._ask(envelope))
        replies = [r for r in await asyncio.gather(*asks) if r is not None]
        if replies:
            assert self._publisher is not None
            await self._publisher.publish_many(replies)
        await consumer.commit()
