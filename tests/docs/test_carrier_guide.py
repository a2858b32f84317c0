"""docs/integrating-carriers.md, executed: a signed webhook post (openssl + curl) and a kcat
scan move a real shipment through tracking; the tender snippets read and answer a tender."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiokafka.partitioner import murmur2
from handoff_events import topics
from handoff_events.envelope import decode, encode, new_envelope
from handoff_events.examples import EXAMPLES, SHIPMENT_ID

from tests.docs.conftest import Run
from tests.docs.stack import Stack
from tests.support.streams import header, produce_raw, read_topic

pytestmark = pytest.mark.kafka
GUIDE = "integrating-carriers.md"
MARKETPLACES = "integrating-marketplaces.md"


async def shipment_status(run_snippet: Run, want: str, timeout: float = 30) -> dict[str, Any]:
    """Poll the marketplace guide's `curl GET /v1/shipments/{id}` until the status is `want`."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        got = run_snippet(MARKETPLACES, "curl-get-shipment", check=False)
        last = got.stdout + got.stderr
        if got.returncode == 0:
            state: dict[str, Any] = json.loads(got.stdout)
            if state["status"] == want:
                return state
        assert time.monotonic() < deadline, f"status {want!r} not reached: {last}"
        await asyncio.sleep(0.2)


async def produce_event(stack: Stack, topic: str, key: str, ce_type: str, event_id: str) -> None:
    data = EXAMPLES[ce_type]
    value, headers = encode(
        new_envelope(data, source="tests/docs", tenant_id="acme", id=event_id, time=None)
    )
    await produce_raw(stack.bootstrap, stack.prefix + topic, [(key, value, headers)])


@pytest.mark.real_clock  # the snippet signs with `date +%s`
async def test_signed_webhook_and_topic_scans_move_the_shipment(
    stack: Stack, run_snippet: Run
) -> None:
    # the shipment: the example order (idempotent if another test placed it already)
    run_snippet(MARKETPLACES, "kcat-publish-order")
    await shipment_status(run_snippet, "requested")
    # allocation is not part of this stack: its decision is produced by hand; tracking
    # records the tracking number from it, as it would from carrier allocation
    await produce_event(
        stack, topics.ALLOCATIONS, SHIPMENT_ID, "handoff.carrier.allocated.v1", "docs-alloc-1"
    )
    allocated = await shipment_status(run_snippet, "allocated")
    assert allocated["tracking_number"] == "SW123456789"

    answer = run_snippet(GUIDE, "sign-and-post").stdout
    assert json.loads(answer)["accepted"] == 1
    out_for_delivery = await shipment_status(run_snippet, "out_for_delivery")
    assert out_for_delivery["carrier"] == "swift"

    wrong = run_snippet(GUIDE, "sign-and-post", check=False, SECRET="not-the-secret")
    assert wrong.returncode != 0 and "bad_signature" in wrong.stdout

    run_snippet(GUIDE, "kcat-post-tracking-event")  # DLV by topic
    delivered = await shipment_status(run_snippet, "delivered")
    assert delivered["version"] > out_for_delivery["version"]
    # the marketplace guide's table of latest states: the last record of the key is delivered
    table = run_snippet(MARKETPLACES, "kcat-read-state").stdout.strip().splitlines()
    latest = dict(line.split("\t", 1) for line in table)
    assert json.loads(latest[SHIPMENT_ID])["status"] == "delivered"

    records = await read_topic(stack.bootstrap, stack.prefix + topics.CARRIER_TRACKING, 2, 5, 0)
    [scan] = [r for r in records if header(r, "ce_id") == "swift-8842"]
    assert scan.partition == int(murmur2(b"swift/SW123456789") & 0x7FFFFFFF) % 3


async def test_a_tender_is_read_and_accepted_with_kcat(stack: Stack, run_snippet: Run) -> None:
    await produce_event(
        stack, topics.TENDERS, SHIPMENT_ID, "handoff.tender.requested.v1", "docs-tender-1"
    )
    deadline = time.monotonic() + 30
    while "ce_id=docs-tender-1" not in (printed := run_snippet(GUIDE, "kcat-read-tenders").stdout):
        assert time.monotonic() < deadline, "the tender did not show up"
    [entry] = [e for e in printed.split("\n\n") if "ce_id=docs-tender-1" in e]
    key, headers, data = entry.strip().splitlines()
    assert key == f"key={SHIPMENT_ID}" and "ce_tenantid=acme" in headers
    assert json.loads(data)["tender_id"] == "tdr_1"

    run_snippet(GUIDE, "kcat-accept-tender", SHIPMENT_ID=SHIPMENT_ID, TENANT="acme")
    replies = await read_topic(stack.bootstrap, stack.prefix + topics.TENDER_REPLIES, 1, 15, 0)
    [reply] = [r for r in replies if header(r, "ce_id") == "swift-reply-tdr_1"]
    assert reply.key == SHIPMENT_ID.encode()
    assert reply.partition == int(murmur2(SHIPMENT_ID.encode()) & 0x7FFFFFFF) % 3
    spec = topics.BY_NAME[topics.TENDER_REPLIES]
    envelope = decode(reply.value, reply.headers, accept=spec.event_types)
    assert envelope.tenant_id == "acme"
    assert envelope.data == EXAMPLES["handoff.tender.accepted.v1"]
