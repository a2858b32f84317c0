"""docs/integrating-marketplaces.md, executed: its kcat, curl and aiokafka commands run as
written against order intake and tracking on the real broker."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from aiokafka.partitioner import murmur2
from aiokafka.structs import ConsumerRecord
from handoff_events import topics
from handoff_events.contracts import ShipmentUpdate
from handoff_events.envelope import decode, encode, new_envelope
from handoff_events.examples import EXAMPLES, ORDER_ID, SHIPMENT_ID

from tests.docs.conftest import DOCS, Run
from tests.docs.mdblocks import blocks
from tests.docs.stack import Stack
from tests.support.streams import header, produce_raw, read_topic

pytestmark = pytest.mark.kafka
GUIDE = "integrating-marketplaces.md"
PARTITIONS = 3


def murmur2_partition(key: str) -> int:
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


async def records_until(
    stack: Stack, topic: str, found: Callable[[list[ConsumerRecord]], bool], timeout: float = 30
) -> list[ConsumerRecord]:
    """Re-read `topic` (read_committed, from the beginning) until `found` holds."""
    deadline = time.monotonic() + timeout
    while True:
        records = await read_topic(stack.bootstrap, stack.prefix + topic, 10_000, 1.0, 0.0)
        if found(records):
            return records
        assert time.monotonic() < deadline, f"{topic}: condition not met within {timeout}s"


def updates_of(records: list[ConsumerRecord], shipment_id: str) -> list[Any]:
    out = []
    for record in records:
        envelope = decode(record.value, record.headers)
        if envelope.subject == shipment_id:
            out.append(envelope)
    return out


def has_update(shipment_id: str, milestone: str) -> Callable[[list[ConsumerRecord]], bool]:
    return lambda records: any(
        e.data.milestone == milestone for e in updates_of(records, shipment_id)
    )


async def test_kcat_order_becomes_a_shipment_update(stack: Stack, run_snippet: Run) -> None:
    run_snippet(GUIDE, "kcat-publish-order")

    # kcat with murmur2_random put the order where Java and aiokafka producers would
    orders = await records_until(
        stack,
        topics.ORDERS,
        lambda rs: any(header(r, "ce_id") == "acme-A-1001-placed" for r in rs),
    )
    # (the carrier guide's test publishes the same order too: every copy must be right)
    for record in [r for r in orders if header(r, "ce_id") == "acme-A-1001-placed"]:
        assert record.key == b"acme/A-1001"
        assert record.partition == murmur2_partition("acme/A-1001")
        envelope = decode(record.value, record.headers, accept={"handoff.order.placed.v1"})
        assert envelope.tenant_id == "acme"
        assert envelope.data == EXAMPLES["handoff.order.placed.v1"]

    await records_until(stack, topics.UPDATES, has_update(SHIPMENT_ID, "requested"))
    printed = run_snippet(GUIDE, "kcat-consume-updates").stdout
    key_line, headers_line, data_line = printed.strip().splitlines()[:3]
    assert key_line.startswith("key=shp_")
    headers = dict(h.split("=", 1) for h in headers_line.removeprefix("headers=").split(","))
    assert headers["ce_type"].startswith("handoff.shipment.update.")
    assert headers["ce_tenantid"] == "acme" and headers["ce_specversion"] == "1.0"
    update = msgspec.json.decode(data_line, type=ShipmentUpdate)
    assert update.update_id == headers["ce_id"]  # dedupe by either
    assert key_line == f"key={update.shipment_id}"


async def test_the_python_examples_publish_and_follow(stack: Stack, run_snippet: Run) -> None:
    result = run_snippet(GUIDE, "python-publish-and-follow", GROUP=f"docs-{uuid.uuid4().hex}")
    published, *updates = [json.loads(line) for line in result.stdout.splitlines()]
    assert published["topic"] == stack.prefix + topics.ORDERS
    assert published["partition"] == murmur2_partition("acme/A-1001")  # aiokafka's default
    assert updates and updates[0]["shipment_id"] == SHIPMENT_ID
    assert updates[0]["order_id"] == ORDER_ID
    assert updates[0]["type"] == "handoff.shipment.update.requested.v1"


async def test_a_return_request_by_kcat_is_a_valid_record(stack: Stack, run_snippet: Run) -> None:
    run_snippet(GUIDE, "kcat-publish-return")
    records = await records_until(
        stack,
        topics.RETURN_REQUESTS,
        lambda rs: any(header(r, "ce_id") == "acme-RR-555" for r in rs),
    )
    [record] = [r for r in records if header(r, "ce_id") == "acme-RR-555"]
    assert record.key == b"acme/A-1001" and record.partition == murmur2_partition("acme/A-1001")
    spec = topics.BY_NAME[topics.RETURN_REQUESTS]
    envelope = decode(record.value, record.headers, accept=spec.event_types)
    assert envelope.data == EXAMPLES["handoff.return.requested.v1"]


async def test_an_undecodable_order_is_dead_lettered_with_the_reason(
    stack: Stack, run_snippet: Run
) -> None:
    value, headers = encode(
        new_envelope(
            EXAMPLES["handoff.order.placed.v1"],
            source="marketplace/acme",
            tenant_id="acme",
            id="acme-A-1003-placed",
        )
    )
    no_tenant = [(k, v) for k, v in headers if k != "ce_tenantid"]
    await produce_raw(
        stack.bootstrap, stack.prefix + topics.ORDERS, [("acme/A-1003", value, no_tenant)]
    )

    deadline = time.monotonic() + 30
    while True:
        printed = run_snippet(GUIDE, "kcat-read-dlq").stdout
        if "ce_id=acme-A-1003-placed" in printed:
            break
        assert time.monotonic() < deadline, f"no dead letter within 30 s:\n{printed}"
    [entry] = [e for e in printed.split("\n\n") if "ce_id=acme-A-1003-placed" in e]
    assert "key=acme/A-1003" in entry
    assert "handoff_dlq_reason=missing_attribute" in entry
    assert "handoff_dlq_field=ce_tenantid" in entry
    assert f"handoff_dlq_topic={stack.prefix}{topics.ORDERS}" in entry
    assert entry.splitlines()[-1] == value.decode()  # the original bytes


async def test_orders_over_http(stack: Stack, run_snippet: Run, examples_dir: Path) -> None:
    placed = json.loads(run_snippet(GUIDE, "curl-place-order").stdout)
    assert placed["shipment_ids"] == [SHIPMENT_ID]
    assert placed["topic"] == stack.prefix + topics.ORDERS
    assert placed["partition"] == murmur2_partition("acme/A-1001")

    cancelled = json.loads(run_snippet(GUIDE, "curl-cancel-order", ORDER_ID="A-1099").stdout)
    assert cancelled["order_id"] == "A-1099"

    answer = run_snippet(GUIDE, "curl-invalid-order").stdout.strip().splitlines()
    assert answer[-1] == "HTTP 422 application/problem+json"
    problem = json.loads("\n".join(answer[:-1]))
    assert problem["reason"] == "schema_violation" and problem["status"] == 422
    assert problem["field"] == "$.placed_at" and problem["value"] == "2026-11-20T10:00:00"
    [shown] = [b for b in blocks((DOCS / GUIDE).read_text()) if b.arg == "problem"]
    assert json.loads(shown.body) == problem  # the guide shows the real answer

    unauthorised = run_snippet(GUIDE, "curl-invalid-order", API_KEY="wrong").stdout
    assert unauthorised.strip().endswith("HTTP 401 application/problem+json")

    # the guide's claim: an order that cannot be shipped arrives as a `rejected` update
    # with every reason, under the shipment id a valid order would have had
    order = json.loads((examples_dir / "order.json").read_text())
    order["order_id"] = "A-1004"
    order["ship_to"]["postal_code"] = "1011"
    (examples_dir / "order.json").write_text(json.dumps(order))
    rejected_id = json.loads(run_snippet(GUIDE, "curl-place-order").stdout)["shipment_ids"][0]
    records = await records_until(stack, topics.UPDATES, has_update(rejected_id, "rejected"))
    [update] = [e for e in updates_of(records, rejected_id) if e.data.milestone == "rejected"]
    assert update.type == "handoff.shipment.update.rejected.v1"
    assert update.data.status == "rejected" and update.tenant_id == "acme"
    reasons = {(r.code, r.field, r.value) for r in update.data.reasons}
    assert ("invalid_postal_code", "$.ship_to.postal_code", "1011") in reasons

    # the guide's query, for the rejected shipment: yours with your key, nobody else's
    deadline = time.monotonic() + 30
    while True:
        got = run_snippet(GUIDE, "curl-get-shipment", check=False, SHIPMENT_ID=rejected_id)
        if got.returncode == 0:
            break
        assert time.monotonic() < deadline, got.stdout + got.stderr
        await asyncio.sleep(0.2)
    state = json.loads(got.stdout)
    assert state["status"] == "rejected" and state["reasons"][0]["code"] == "invalid_postal_code"
    async with httpx.AsyncClient(timeout=5) as client:
        other = await client.get(
            f"{stack.services['tracking'].url}/v1/shipments/{rejected_id}",
            headers={"Authorization": "Bearer globex-key"},
        )
    assert other.status_code == 404
