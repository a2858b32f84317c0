"""Every event type survives real Kafka: encode → produce → consume → decode equals the original,
headers conform to the CloudEvents Kafka binding, and structured mode is accepted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from handoff_events.contracts import EVENT_TYPES
from handoff_events.envelope import decode, encode, encode_structured, new_envelope
from handoff_events.examples import EXAMPLES
from handoff_events.provision import provision
from handoff_events.topics import STATE, Names

from tests.support.streams import produce_raw, read_topic

pytestmark = pytest.mark.kafka


async def test_every_event_type_round_trips_through_kafka(
    kafka_bootstrap: str, unique_name: str
) -> None:
    prefix = f"{unique_name}."
    topic = Names(prefix)(STATE)  # any provisioned topic carries any record; decode checks types
    await provision(
        kafka_bootstrap,
        prefix=prefix,
        partitions=1,
        topics=[
            t
            for t in __import__("handoff_events.topics", fromlist=["CATALOGUE"]).CATALOGUE
            if t.name == STATE
        ],
    )
    time = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    originals = [
        new_envelope(
            EXAMPLES[ce_type],
            source="handoff/test",
            tenant_id="acme",
            id=f"evt-{i}",
            time=time,
            type=ce_type,
        )
        for i, ce_type in enumerate(sorted(EVENT_TYPES))
    ]
    records = [(f"key-{i}", *encode(env)) for i, env in enumerate(originals)]
    structured = new_envelope(
        EXAMPLES["handoff.order.placed.v1"],
        source="marketplace://acme",
        tenant_id="acme",
        id="structured-1",
        time=time,
    )
    records.append(
        (
            "key-structured",
            encode_structured(structured),
            [("content-type", b"application/cloudevents+json")],
        )
    )
    await produce_raw(kafka_bootstrap, topic, records)

    received = await read_topic(kafka_bootstrap, topic, len(records))
    assert len(received) == len(records)
    for record, env in zip(received[:-1], originals, strict=True):
        headers = dict(record.headers)
        assert headers["ce_specversion"] == b"1.0"
        assert headers["content-type"] == b"application/json"
        assert headers["ce_id"] == env.id.encode() and headers["ce_type"] == env.type.encode()
        assert headers["ce_tenantid"] == b"acme"
        assert headers["ce_time"] == b"2026-11-20T10:00:00Z"
        assert decode(record.value, record.headers) == env
    assert decode(received[-1].value, received[-1].headers) == structured
