"""The returns service on a real broker, alone: the test plays order intake, tracking and the
marketplace by producing their events to the prefixed topics, and reads what returns emits."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import TopicPartition
from handoff_events import topics
from handoff_events.contracts import (
    Event,
    RefundEligible,
    ReturnAuthorised,
    ReturnExpired,
    ReturnReceived,
    ReturnRefused,
    ShipmentRequested,
)
from handoff_events.envelope import Envelope, decode, encode
from handoff_events.ids import return_shipment_id
from handoff_events.provision import provision
from handoff_events.runtime.app import ServiceApp
from handoff_returns.adapters.policy_file import ReturnsConfig
from handoff_returns.bootstrap import build_app
from handoff_returns.domain.requests import rma_id
from handoff_returns.settings import ReturnsSettings

from services.returns.tests.factories import (
    CENTRES,
    policy,
    return_requested,
    shipment_requested,
    update,
    update_type,
    wrap,
)
from tests.support.streams import partitions_of, until

pytestmark = pytest.mark.kafka
NOW = datetime.now(UTC)


class Collector:
    """Reads a topic from the beginning for the whole test (read_committed, group-less)."""

    def __init__(self, bootstrap: str, topic: str):
        self.topic = topic
        self.records: list[tuple[str, Envelope[Event] | None, dict[str, str]]] = []
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            group_id=None,
            enable_auto_commit=False,
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        parts = await partitions_of(self._consumer, self.topic)
        tps = [TopicPartition(self.topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            for batch in (await self._consumer.getmany(timeout_ms=100)).values():
                for rec in batch:
                    heads = {k: v.decode() for k, v in rec.headers or () if v is not None}
                    try:
                        env: Envelope[Event] | None = decode(rec.value, rec.headers or ())
                    except Exception:
                        env = None
                    self.records.append((rec.key.decode() if rec.key else "", env, heads))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def events(self, cls: type | None = None, key: str | None = None) -> list[Any]:
        return [
            env.data
            for k, env, _ in self.records
            if env is not None
            and (cls is None or isinstance(env.data, cls))
            and (key is None or k == key)
        ]

    async def wait(self, predicate: Callable[[], bool], what: str, within: float = 30.0) -> None:
        await until(predicate, timeout=within, what=f"{self.topic}: {what}")


class Harness:
    def __init__(
        self,
        bootstrap: str,
        prefix: str,
        app: ServiceApp,
        producer: AIOKafkaProducer,
        *,
        settings: ReturnsSettings,
        config: ReturnsConfig,
    ):
        self.bootstrap, self.prefix, self.app, self.producer = bootstrap, prefix, app, producer
        self.settings, self.config = settings, config
        self.collectors: dict[str, Collector] = {}

    async def restart(self, state_dir: Path) -> None:
        """Stop the service and start a fresh instance (another state dir: no local snapshot,
        so the stores must come back from the changelogs)."""
        await self.app.stop()
        settings = self.settings.model_copy(update={"state_dir": state_dir})
        self.app = build_app(settings, config=self.config)
        await self.app.start()
        await until(lambda: self.app.ready, timeout=45, what="restarted app ready")

    async def collect(self, topic: str) -> Collector:
        collector = Collector(self.bootstrap, self.prefix + topic)
        await collector.start()
        self.collectors[topic] = collector
        return collector

    async def send(self, topic: str, key: str, data: Any, tenant: str = "acme", **kw: Any) -> None:
        value, headers = encode(wrap(data, tenant=tenant, **kw))
        await self.producer.send_and_wait(
            self.prefix + topic, value=value, key=key.encode(), headers=headers
        )

    async def send_raw(self, topic: str, key: str, value: bytes) -> None:
        await self.producer.send_and_wait(self.prefix + topic, value=value, key=key.encode())

    def ledger(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for store in self.app.engines[1].stores.values():
            merged.update(store)
        return merged

    def order_index(self) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for store in self.app.engines[0].stores.values():
            merged.update(store)
        return merged


@pytest.fixture
async def harness(kafka_bootstrap: str, unique_name: str, tmp_path: Any) -> AsyncIterator[Harness]:
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    settings = ReturnsSettings(
        topic_prefix=prefix,
        partitions=3,
        kafka_bootstrap_servers=kafka_bootstrap,
        state_dir=tmp_path,
        expiry_check_interval_s=0.2,
        log_json=False,
    )
    config = ReturnsConfig(
        policies={
            "acme": policy(label_validity=timedelta(days=10)),
            # globex: a compressed label validity, to see expiry within the test
            "globex": policy(tenant_id="globex", label_validity=timedelta(seconds=2)),
        },
        centres=CENTRES,
    )
    app = build_app(settings, config=config)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    h = Harness(kafka_bootstrap, prefix, app, producer, settings=settings, config=config)
    await app.start()
    try:
        await until(lambda: app.ready, timeout=45, what="returns app ready")
        yield h
    finally:
        for collector in h.collectors.values():
            await collector.stop()
        await producer.stop()
        await h.app.stop()


async def delivered(h: Harness, tenant: str, order_id: str, at: datetime) -> str:
    """Play order intake and tracking: the shipment was requested and then delivered."""
    shipment = shipment_requested(tenant=tenant, order_id=order_id)
    await h.send(topics.INTAKE_SHIPMENTS, shipment.shipment_id, shipment, tenant=tenant)
    upd = update(
        shipment.shipment_id, "delivered", "delivered", at, tenant=tenant, order_id=order_id
    )
    await h.send(topics.UPDATES, shipment.shipment_id, upd, tenant=tenant, type=update_type(upd))
    await until(
        lambda: (
            (rec := h.ledger().get(shipment.shipment_id)) is not None
            and rec.delivered_at is not None
        ),
        what="ledger knows the delivery",
    )
    await until(
        lambda: f"{tenant}/{order_id}" in h.order_index(), what="order index knows the shipment"
    )
    return shipment.shipment_id


async def test_return_authorised_reverse_shipment_received_refund_and_expiry(
    harness: Harness,
) -> None:
    h = harness
    returns = await h.collect(topics.RETURNS)
    reverse = await h.collect(topics.RETURN_SHIPMENTS)
    shp = await delivered(h, "acme", "A-1001", NOW - timedelta(days=2))

    # the marketplace asks for a return without naming the shipment: routed by order
    request = return_requested(request_id="R-1", at=NOW - timedelta(hours=1))
    await h.send(topics.RETURN_REQUESTS, "acme/A-1001", request, ce_id="evt-r1")
    rma = rma_id("acme", "R-1")
    rsid = return_shipment_id("acme", rma)
    await returns.wait(lambda: bool(returns.events(ReturnAuthorised, key=shp)), "authorised")
    [auth] = returns.events(ReturnAuthorised)
    assert (auth.rma_id, auth.return_shipment_id, auth.shipment_id) == (rma, rsid, shp)
    await reverse.wait(lambda: bool(reverse.events(ShipmentRequested, key=rsid)), "reverse")
    [rev] = reverse.events(ShipmentRequested)
    assert rev.is_return and rev.return_of_shipment_id == shp and rev.rma_id == rma
    assert rev.origin.kind == "customer" and rev.destination.city == "Kassel"

    # a duplicate (same return_request_id, new event id), then a sentinel behind it on the
    # same partitions: once the sentinel's refusal is out, the duplicate was handled too
    await h.send(topics.RETURN_REQUESTS, "acme/A-1001", request, ce_id="evt-r1-again")
    sentinel = return_requested(request_id="R-2", at=NOW - timedelta(minutes=30))
    await h.send(topics.RETURN_REQUESTS, "acme/A-1001", sentinel, ce_id="evt-r2")
    await returns.wait(lambda: bool(returns.events(ReturnRefused)), "sentinel refused")
    [refused] = returns.events(ReturnRefused)
    assert refused.return_request_id == "R-2"
    assert [r.code for r in refused.reasons] == ["already_returned"]
    assert len(returns.events(ReturnAuthorised)) == 1
    assert len(reverse.events(ShipmentRequested)) == 1

    # play tracking for the reverse shipment: picked up, then delivered to the return centre
    picked = update(rsid, "status_changed", "picked_up", NOW, is_return=True)
    await h.send(topics.UPDATES, rsid, picked, type=update_type(picked))
    done = update(rsid, "delivered", "delivered", NOW + timedelta(days=2), is_return=True)
    await h.send(topics.UPDATES, rsid, done, type=update_type(done))
    await returns.wait(lambda: bool(returns.events(RefundEligible)), "refund eligible")
    completion = [e for e in returns.events() if isinstance(e, ReturnReceived | RefundEligible)]
    assert [type(e) for e in completion] == [ReturnReceived, RefundEligible]
    assert all(e.shipment_id == shp and e.rma_id == rma for e in completion)
    assert [k for k, env, _ in returns.records if env and isinstance(env.data, RefundEligible)] == [
        shp
    ]
    await until(
        lambda: (rec := h.ledger().get(shp)) is not None and rec.rmas[0].status == "received",
        what="back-link marks the RMA received",
    )

    # globex's labels are valid for 2 s: an unused one expires
    gshp = await delivered(h, "globex", "G-7", NOW - timedelta(days=1))
    await h.send(
        topics.RETURN_REQUESTS,
        "globex/G-7",
        return_requested(request_id="GR-1", order_id="G-7", at=NOW),
        tenant="globex",
    )
    await returns.wait(lambda: bool(returns.events(ReturnExpired)), "expired", within=30)
    [expired] = returns.events(ReturnExpired)
    assert expired.shipment_id == gshp and expired.rma_id == rma_id("globex", "GR-1")
    assert not [e for e in returns.events(ReturnReceived) if e.shipment_id == gshp]


async def test_bad_requests_go_to_the_dlq_or_get_422_and_good_ones_still_flow(
    harness: Harness,
) -> None:
    h = harness
    returns = await h.collect(topics.RETURNS)
    dlq = await h.collect(topics.RETURN_REQUESTS + ".dlq")
    shp = await delivered(h, "acme", "A-2002", NOW - timedelta(days=1))

    # Kafka: garbage, then a schema violation, then an unroutable request, then a good one
    await h.send_raw(topics.RETURN_REQUESTS, "acme/A-2002", b"\x00not json")
    bad = msgspec.json.decode(msgspec.json.encode(return_requested(order_id="A-2002")))
    bad["items"] = [{"sku": "SKU-1", "quantity": -1}]
    _, headers = encode(wrap(return_requested(order_id="A-2002")))
    await h.producer.send_and_wait(
        h.prefix + topics.RETURN_REQUESTS,
        value=msgspec.json.encode(bad),
        key=b"acme/A-2002",
        headers=headers,
    )
    await h.send(topics.RETURN_REQUESTS, "acme/NOPE-1", return_requested(order_id="NOPE-1"))
    await h.send(
        topics.RETURN_REQUESTS, "acme/A-2002", return_requested(request_id="K-1", order_id="A-2002")
    )
    await returns.wait(lambda: bool(returns.events(ReturnAuthorised, key=shp)), "good one")
    await dlq.wait(lambda: len(dlq.records) >= 3, "three dead letters")
    reasons = sorted(heads.get("handoff_dlq_reason", "") for _, _, heads in dlq.records)
    assert reasons == ["missing_attribute", "schema_violation", "unknown_order"]
    fields = {heads.get("handoff_dlq_field") for _, _, heads in dlq.records}
    assert "$.items[0].quantity" in fields and "$.order_id" in fields

    # HTTP: a 422 names the field; a good request is accepted after Kafka has it, then decided
    transport = httpx.ASGITransport(app=h.app.http)
    async with httpx.AsyncClient(transport=transport, base_url="http://returns") as client:
        auth = {"Authorization": "Bearer acme-key"}
        bad_http = dict(bad, items=[{"sku": "SKU-2", "quantity": 0}])
        response = await client.post("/v1/returns", json=bad_http, headers=auth)
        assert response.status_code == 422
        assert response.json()["field"] == "$.items[0].quantity"
        good = msgspec.json.decode(
            msgspec.json.encode(
                return_requested(request_id="H-1", order_id="A-2002", skus=("SKU-2",))
            )
        )
        response = await client.post("/v1/returns", json=good, headers=auth)
        assert response.status_code == 202
        assert (await client.get("/openapi.json")).status_code == 200
    await returns.wait(
        lambda: any(e.return_request_id == "H-1" for e in returns.events(ReturnAuthorised)),
        "HTTP request authorised",
    )
    assert len(dlq.records) == 3
    assert {heads.get("handoff_dlq_topic") for _, _, heads in dlq.records} == {
        h.prefix + topics.RETURN_REQUESTS
    }


async def test_state_is_restored_from_the_changelogs_after_a_restart(
    harness: Harness, tmp_path: Path
) -> None:
    h = harness
    returns = await h.collect(topics.RETURNS)
    shp = await delivered(h, "acme", "A-3003", NOW - timedelta(days=1))
    request = return_requested(request_id="X-1", order_id="A-3003", at=NOW)
    await h.send(topics.RETURN_REQUESTS, "acme/A-3003", request, ce_id="evt-x1")
    await returns.wait(lambda: bool(returns.events(ReturnAuthorised, key=shp)), "authorised")

    await h.restart(tmp_path / "fresh-state")
    # the order index (routing without shipment_id), the duplicate memory and the RMA all
    # come back: the duplicate is dropped, the sentinel is refused as already returned
    await h.send(topics.RETURN_REQUESTS, "acme/A-3003", request, ce_id="evt-x1-again")
    sentinel = return_requested(request_id="X-2", order_id="A-3003", at=NOW)
    await h.send(topics.RETURN_REQUESTS, "acme/A-3003", sentinel, ce_id="evt-x2")
    await returns.wait(lambda: bool(returns.events(ReturnRefused)), "sentinel refused")
    assert [r.code for r in returns.events(ReturnRefused)[0].reasons] == ["already_returned"]
    assert len(returns.events(ReturnAuthorised)) == 1
