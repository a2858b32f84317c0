"""End to end: a return, from the order to the refund, through every service (issue #7).

Order intake, rate shopping, carrier allocation, tracking and returns (and notifications, with
the development servers it talks to) run as separate processes, started by `make up`'s own
machinery on a unique topic prefix and a free block of ports, with the simulated tender
responder accepting every tender. There is no simulated carrier: the test plays the carrier
(signed webhook scans in the allocated carrier's own codes) and the marketplace (HTTP orders and
return requests, reading `handoff.shipments.updates.v1` read_committed).

The path: order placed → `allocated` → pickup, out for delivery, delivered scans → `delivered`
→ return requested → `return_authorised` (RMA, return shipment) → the reverse shipment is rated
and allocated like any other (`allocated`, `is_return`) → the return carrier's scans up to
delivered at the return centre → `return_received` and `refund_eligible`, on the updates topic
and in the original shipment's history (`GET /v1/shipments/{id}/events`). Along the way: a
malformed HTTP request gets a 422, a malformed record on the returns topic goes to its DLQ
without stopping the flow, and a duplicate request (same `return_request_id`) yields one RMA.
Every process is stopped at the end and none is left behind.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from handoff_events import topics
from handoff_events.contracts import (
    RefundEligible,
    ReturnAuthorised,
    ReturnItem,
    ReturnReceived,
    ReturnRefused,
    ReturnRequested,
    ShipmentRequested,
)
from handoff_events.envelope import encode, new_envelope
from handoff_events.examples import ADA, PARCEL
from handoff_events.ids import shipment_id
from handoff_events.provision import provision
from handoff_events.runtime.settings import SERVICE_PORTS, ServiceSettings
from handoff_events.values import Location
from handoff_sim import up

from tests.e2e.returns_support import (
    HandPlayedCarrier,
    TopicLog,
    base_ports,
    carrier_secrets,
    free_port_offset,
    processes_with,
    tails,
    world_specs,
)
from tests.support.streams import header, produce_raw, read_topic

TENANT, API_KEY = "acme", "acme-key"
ORIGIN = "WH-BER-1"
# Notifications reads every update too; it runs when it starts cleanly (see the report of #7).
WITH_NOTIFICATIONS = True
# Budget (timeout 240 s): start 100 s, then each step 30 s at most; it takes ~1 s on a quiet box.
READY_TIMEOUT_S = 100.0
STEP_TIMEOUT_S = 30.0


def _order(order_id: str, placed_at: datetime) -> dict[str, object]:
    return {
        "order_id": order_id,
        "placed_at": placed_at.isoformat(),
        "service_level": "standard",
        "ship_from": {"location_id": ORIGIN},
        "ship_to": {
            "name": ADA.name,
            "line1": ADA.line1,
            "city": ADA.city,
            "postal_code": ADA.postal_code,
            "country": ADA.country,
            "email": ADA.email,
        },
        "lines": [
            {"sku": "SKU-SHOE-42", "quantity": 1},
            {"sku": "SKU-SOCK-3", "quantity": 2},
        ],
        "parcels": [
            {
                "parcel_id": PARCEL.parcel_id,
                "weight_g": PARCEL.weight_g,
                "length_mm": PARCEL.length_mm,
                "width_mm": PARCEL.width_mm,
                "height_mm": PARCEL.height_mm,
            }
        ],
    }


def _return(request_id: str, order_id: str, sku: str, at: datetime) -> dict[str, object]:
    return {
        "return_request_id": request_id,
        "order_id": order_id,
        "requested_at": at.isoformat(),
        "items": [{"sku": sku, "quantity": 1}],
        "reason_code": "changed_mind",
        "method": "drop_off",
    }


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_return_flows_through_every_service_to_refund_eligible(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    started = time.monotonic()
    timings: dict[str, float] = {}

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - started, 1)

    prefix = f"{unique_name}."
    opts = up.UpOptions(
        run_dir=tmp_path / "run",
        seed=7,
        port_offset=free_port_offset(base_ports()),
        partitions=3,
        topic_prefix=prefix,
        bootstrap=kafka_bootstrap,
        stop_timeout_s=15.0,
    )
    settings = ServiceSettings(
        kafka_bootstrap_servers=kafka_bootstrap, topic_prefix=prefix, partitions=3
    )
    names = topics.Names(prefix)
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    secrets = carrier_secrets(prefix)
    specs = world_specs(opts, WITH_NOTIFICATIONS, secrets)
    url = {s: f"http://127.0.0.1:{opts.port(SERVICE_PORTS[s])}" for s in SERVICE_PORTS}
    auth = {"Authorization": f"Bearer {API_KEY}"}
    carrier = HandPlayedCarrier(url["tracking"], secrets)
    updates = TopicLog(settings, topics.UPDATES)
    returns = TopicLog(settings, topics.RETURNS)
    reverse = TopicLog(settings, topics.RETURN_SHIPMENTS)
    logs = (updates, returns, reverse)
    running: list[up.Running] = []
    try:
        for spec in specs:  # one at a time, so a failed launch still stops the ones before
            running.append(up.launch(opts, kafka_bootstrap, spec))
        await up.wait_ready(running, READY_TIMEOUT_S)
        lap("all processes ready")
        for log in logs:
            await log.follower.start()

        def diagnose() -> str:
            seen = [
                (k[:12], type(e).__name__, getattr(e, "milestone", "")) for k, e in updates.events
            ]
            return f"updates so far: {seen}\n{tails(running)}"

        async def wait(log: TopicLog, predicate: Callable[[], object], what: str) -> None:
            await log.wait_for(predicate, what, STEP_TIMEOUT_S, diagnose)

        async with httpx.AsyncClient(timeout=15.0) as client:
            # ---- the marketplace places an order ----------------------------------------
            order_id = f"E2E-RET-{unique_name[-8:]}"
            now = datetime.now(UTC)
            response = await client.post(
                f"{url['order_intake']}/v1/orders", json=_order(order_id, now), headers=auth
            )
            assert response.status_code == 202, response.text
            outbound = shipment_id(TENANT, order_id, ORIGIN)

            await wait(updates, lambda: updates.updates(outbound, "allocated"), "allocated")
            lap("outbound allocated")
            [allocated] = updates.updates(outbound, "allocated")
            assert allocated.carrier and allocated.tracking_number and not allocated.is_return

            # ---- the test is the carrier: pickup, out for delivery, delivered -----------
            # Each scan happens when it is posted: after the allocation and after the scan
            # before it (the history is in event-time order, so no backdating).
            for status in ("picked_up", "out_for_delivery", "delivered"):
                await carrier.scan(
                    client,
                    allocated.carrier,
                    allocated.tracking_number,
                    status,
                    datetime.now(UTC),
                )
            await wait(updates, lambda: updates.updates(outbound, "delivered"), "delivered")
            lap("outbound delivered")
            [delivered] = updates.updates(outbound, "delivered")
            assert delivered.delivered_at == carrier.sent[-1].occurred_at

            # ---- bad input on both doors: a 422 over HTTP, a garbage record to the DLQ --
            bad = _return("RR-BAD", order_id, "SKU-SHOE-42", datetime.now(UTC))
            bad["items"] = []
            response = await client.post(f"{url['returns']}/v1/returns", json=bad, headers=auth)
            assert response.status_code == 422, response.text
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["field"].startswith("$.items")
            # two malformed records on the order's partition: bytes that are no event at all,
            # and a well-formed envelope whose body breaks the schema (quantity 0)
            _, headers = encode(
                new_envelope(
                    ReturnRequested(
                        return_request_id="RR-SCHEMA",
                        order_id=order_id,
                        requested_at=datetime.now(UTC),
                        items=[ReturnItem(sku="SKU-SHOE-42", quantity=1)],
                        reason_code="damaged",
                        method="drop_off",
                    ),
                    source=f"marketplace/{TENANT}",
                    tenant_id=TENANT,
                    id=f"e2e-schema-{order_id}",
                )
            )
            bad_schema = dict(_return("RR-SCHEMA", order_id, "SKU-SHOE-42", datetime.now(UTC)))
            bad_schema["items"] = [{"sku": "SKU-SHOE-42", "quantity": 0}]
            malformed = [b"{not json", json.dumps(bad_schema).encode()]
            await produce_raw(
                kafka_bootstrap,
                names(topics.RETURN_REQUESTS),
                [
                    (f"{TENANT}/{order_id}", malformed[0], []),
                    (f"{TENANT}/{order_id}", malformed[1], headers),
                ],
            )

            # ---- the customer returns the shoes -------------------------------------
            request = _return("RR-1", order_id, "SKU-SHOE-42", datetime.now(UTC))
            response = await client.post(f"{url['returns']}/v1/returns", json=request, headers=auth)
            assert response.status_code == 202, response.text
            await wait(
                updates, lambda: updates.updates(outbound, "return_authorised"), "authorised"
            )
            lap("return authorised")
            [authorised] = updates.updates(outbound, "return_authorised")
            assert authorised.rma_id and authorised.return_shipment_id
            rma, return_id = authorised.rma_id, authorised.return_shipment_id

            # the garbage record is in the DLQ, and did not hold up the request behind it
            dlq = await read_topic(kafka_bootstrap, names(topics.RETURN_REQUESTS) + ".dlq", 2)
            assert [r.value for r in dlq] == malformed
            assert header(dlq[1], "handoff_dlq_field") == "$.items[0].quantity"
            assert all(header(r, "handoff_dlq_service") == "returns" for r in dlq)

            # a duplicate (same return_request_id), then another request for the same shoes
            # on the same order key: its refusal proves the duplicate was handled before it
            response = await client.post(f"{url['returns']}/v1/returns", json=request, headers=auth)
            assert response.status_code == 202, response.text
            again = _return("RR-2", order_id, "SKU-SHOE-42", datetime.now(UTC))
            response = await client.post(f"{url['returns']}/v1/returns", json=again, headers=auth)
            assert response.status_code == 202, response.text
            await wait(updates, lambda: updates.updates(outbound, "return_refused"), "refused")
            [refused] = updates.updates(outbound, "return_refused")
            assert [r.code for r in refused.reasons] == ["already_returned"]

            # ---- the reverse shipment is rated and allocated like any other -------------
            await wait(updates, lambda: updates.updates(return_id, "allocated"), "return alloc")
            lap("return shipment allocated")
            [back] = updates.updates(return_id, "allocated")
            assert back.is_return and back.carrier and back.tracking_number
            assert back.rma_id == rma

            await wait(reverse, lambda: reverse.of(ShipmentRequested), "reverse shipment")
            [reverse_request] = reverse.of(ShipmentRequested)
            centre = reverse_request.destination
            assert (centre.city, centre.country) == ("Kassel", "DE")  # acme's RC-DE-1

            # ---- the return carrier brings the parcel to the return centre --------------
            for status in ("picked_up", "delivered"):
                await carrier.scan(
                    client,
                    back.carrier,
                    back.tracking_number,
                    status,
                    datetime.now(UTC),
                    Location(
                        city=centre.city, postal_code=centre.postal_code, country=centre.country
                    )
                    if status == "delivered"
                    else None,
                )
            await wait(
                updates, lambda: updates.updates(outbound, "refund_eligible"), "refund eligible"
            )
            lap("refund eligible")
            [received] = updates.updates(outbound, "return_received")
            [eligible] = updates.updates(outbound, "refund_eligible")
            assert received.rma_id == eligible.rma_id == rma
            assert received.return_shipment_id == return_id
            milestones = [u.milestone for u in updates.updates(outbound)]
            assert milestones.index("return_received") < milestones.index("refund_eligible")
            assert milestones.index("delivered") < milestones.index("return_authorised")

            # returns' own record: one RMA despite the duplicate, one reverse shipment
            assert len(returns.of(ReturnAuthorised)) == 1
            assert len(updates.updates(outbound, "return_authorised")) == 1
            assert [r.return_request_id for r in returns.of(ReturnRefused)] == ["RR-2"]
            assert len(returns.of(ReturnReceived)) == 1
            [refund] = returns.of(RefundEligible, key=outbound)
            assert refund.policy_outcome == "charged_return:changed_mind"
            assert refund.refund_fee is not None and refund.refund_fee.amount == 395
            assert reverse.of(ShipmentRequested) == [reverse_request]
            assert reverse_request.shipment_id == return_id
            assert reverse_request.is_return and reverse_request.rma_id == rma
            assert reverse_request.skus == ["SKU-SHOE-42"]
            assert reverse_request.return_of_shipment_id == outbound
            assert reverse_request.origin.kind == "customer"

            # ---- and the original shipment's history tells the whole story --------------
            entries: list[dict[str, Any]] = []

            async def history() -> list[str]:
                response = await client.get(
                    f"{url['tracking']}/v1/shipments/{outbound}/events", headers=auth
                )
                assert response.status_code == 200, response.text
                entries[:] = response.json()["events"]
                return [e["type"] for e in entries]

            wanted = [
                ReturnAuthorised.ce_type,
                ReturnReceived.ce_type,
                RefundEligible.ce_type,
            ]
            deadline = time.monotonic() + STEP_TIMEOUT_S
            while not set(wanted) <= set(types := await history()):
                assert time.monotonic() < deadline, f"history lacks the return: {types}"
                await asyncio.sleep(0.2)
            assert [t for t in types if t in wanted] == wanted, types
            # the carrier's own codes, kept beside the canonical status tracking made of them
            outbound_scans = [
                s for s in carrier.sent if s.tracking_number == allocated.tracking_number
            ]
            assert [(e["carrier_code"], e["status"]) for e in entries if e.get("carrier_code")] == [
                (s.code, status)
                for s, status in zip(
                    outbound_scans, ("picked_up", "out_for_delivery", "delivered"), strict=True
                )
            ]
            lap("history checked")
    finally:
        for log in logs:
            await log.follower.stop()
        killed = await asyncio.to_thread(up.stop_processes, running, opts.stop_timeout_s)
        lap("stopped")
        codes = {r.spec.name: r.process.returncode for r in running}
        carriers = sorted({(s.carrier, s.code) for s in carrier.sent})
        print(f"\nreturns e2e: timings (s) {timings}; scans {carriers}; killed {killed}; "
              f"exit codes {codes}")  # fmt: skip
    assert processes_with(f"HANDOFF_TOPIC_PREFIX={prefix}") == []
    assert all(r.process.poll() is not None for r in running)
    # the services drained and exited cleanly on SIGTERM (none had to be killed)
    assert killed == []
    assert {r.spec.name: r.process.returncode for r in running if r.spec.kind == "service"} == {
        r.spec.name: 0 for r in running if r.spec.kind == "service"
    }
