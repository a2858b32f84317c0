"""Kafka least privilege, enforced by a real broker: SASL/SCRAM users per service and the
standard ACL authorizer, with the ACLs derived from the topic catalogue
(`handoff_events.topics.reads/writes`). A service can write its own topics and read its
inputs; producing to another service's topic, reading a topic it does not consume or
using another service's transactional id is refused by the broker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    GroupAuthorizationFailedError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from aiokafka.structs import TopicPartition
from handoff_events import topics
from handoff_events.provision import provision
from handoff_events.topics import SERVICES, Service, reads, writes

from tests.security.secure_broker import ADMIN, SecureBroker, running, service_acls

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureBroker]:
    with running(tmp_path_factory.mktemp("secure-kafka"), SERVICES) as broker:
        asyncio.run(
            provision(
                broker.bootstrap,
                partitions=1,
                replication_factor=1,
                client_args={
                    k: v for k, v in broker.client_args(ADMIN).items() if k != "bootstrap_servers"
                },
            )
        )
        acls = [acl for service in SERVICES for acl in service_acls(service)]
        broker.create_acls(acls)
        yield broker


def _own_topic(service: Service) -> str:
    return next(t.name for t in writes(service) if not t.changelog and not t.dlq_of)


def _foreign_topic(service: Service) -> str:
    """A topic another service owns and this one never writes."""
    mine = {t.name for t in writes(service)}
    return next(
        t.name
        for t in topics.CATALOGUE
        if t.name not in mine and t.owner in SERVICES and t.owner != service and not t.dlq_of
    )


async def _producer(broker: SecureBroker, user: str, **extra: object) -> AIOKafkaProducer:
    producer = AIOKafkaProducer(
        **broker.client_args(user),  # type: ignore[arg-type]
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=15_000,
        **extra,  # type: ignore[arg-type]
    )
    await producer.start()
    return producer


@pytest.fixture
async def stop_later() -> AsyncIterator[list[AIOKafkaProducer | AIOKafkaConsumer]]:
    clients: list[AIOKafkaProducer | AIOKafkaConsumer] = []
    yield clients
    for client in clients:
        try:
            await client.stop()
        except KafkaError:
            pass


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_writes_its_own_topic_and_is_denied_another_services_topic(
    secure_broker: SecureBroker, service: Service, stop_later: list[object]
) -> None:
    producer = await _producer(secure_broker, service)
    stop_later.append(producer)
    own = _own_topic(service)
    metadata = await producer.send_and_wait(own, b"{}", key=b"k")
    assert metadata.topic == own and metadata.offset >= 0

    foreign = _foreign_topic(service)
    with pytest.raises(TopicAuthorizationFailedError):
        await producer.send_and_wait(foreign, b"{}", key=b"k")


async def test_a_wrong_password_is_refused(secure_broker: SecureBroker) -> None:
    args = secure_broker.client_args("order_intake")
    args["sasl_plain_password"] = "not-the-password"
    producer = AIOKafkaProducer(**args, request_timeout_ms=5_000)  # type: ignore[arg-type]
    with pytest.raises(KafkaError):
        await producer.start()
    await producer.stop()


async def _unauthorized(broker: SecureBroker, user: str, topic: str) -> bool:
    """Ask the broker for `topic`'s metadata as `user`: is it refused as not authorised?"""
    args = dict(broker.client_args(user))
    client = AIOKafkaClient(**args)  # type: ignore[arg-type]
    await client.bootstrap()
    try:
        client.add_topic(topic)
        await client.force_metadata_update()
        return topic in client.cluster.unauthorized_topics
    finally:
        await client.close()


async def test_a_service_is_denied_reading_a_topic_it_does_not_consume(
    secure_broker: SecureBroker,
) -> None:
    # Order intake consumes orders; the carriers' raw tracking events are tracking's alone.
    assert topics.CARRIER_TRACKING not in {t.name for t in reads("order_intake")}
    assert await _unauthorized(secure_broker, "order_intake", topics.CARRIER_TRACKING)
    assert not await _unauthorized(secure_broker, "tracking", topics.CARRIER_TRACKING)


async def test_a_service_reads_its_inputs_in_its_own_group_only(
    secure_broker: SecureBroker, stop_later: list[object]
) -> None:
    tp = TopicPartition(topics.ORDERS, 0)
    reader = AIOKafkaConsumer(
        **secure_broker.client_args("order_intake"),  # type: ignore[arg-type]
        group_id="handoff.order_intake.orders",
        enable_auto_commit=False,
    )
    stop_later.append(reader)
    await reader.start()
    reader.assign([tp])
    await reader.seek_to_beginning(tp)
    await reader.getmany(timeout_ms=500)  # authorised: no exception
    await reader.commit({tp: 0})

    intruder = AIOKafkaConsumer(
        **secure_broker.client_args("order_intake"),  # type: ignore[arg-type]
        group_id="handoff.tracking.fold",  # another service's group
        enable_auto_commit=False,
    )
    stop_later.append(intruder)
    await intruder.start()
    intruder.assign([tp])
    with pytest.raises(GroupAuthorizationFailedError):
        await intruder.commit({tp: 0})


async def test_transactions_only_under_the_services_own_transactional_ids(
    secure_broker: SecureBroker, stop_later: list[object]
) -> None:
    own = await _producer(secure_broker, "tracking", transactional_id="handoff.tracking.fold.0")
    stop_later.append(own)
    await own.begin_transaction()
    await own.send(topics.STATE, b"{}", key=b"shp_1")
    await own.commit_transaction()

    borrowed = AIOKafkaProducer(
        **secure_broker.client_args("tracking"),  # type: ignore[arg-type]
        acks="all",
        enable_idempotence=True,
        transactional_id="handoff.carrier_allocation.shipments.0",
        request_timeout_ms=15_000,
    )
    with pytest.raises(TransactionalIdAuthorizationFailed):
        await borrowed.start()
        await borrowed.begin_transaction()
    await borrowed.stop()


def test_acls_follow_the_catalogue_exactly() -> None:
    """The ACL list is the catalogue, nothing more: no wildcard, no CREATE/ALTER/DELETE."""
    for service in SERVICES:
        acls = service_acls(service)
        assert all(name != "*" for _, _, _, name, _ in acls)
        assert {op for *_, op in acls} <= {"READ", "WRITE", "DESCRIBE"}
        written = {name for _, kind, _, name, op in acls if kind == "TOPIC" and op == "WRITE"}
        assert written == {t.name for t in writes(service)}
        read = {name for _, kind, _, name, op in acls if kind == "TOPIC" and op == "READ"}
        assert read == {t.name for t in reads(service)}
