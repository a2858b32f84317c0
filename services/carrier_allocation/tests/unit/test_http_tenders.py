"""The HTTP tender adapter: a carrier's synchronous answer becomes the reply event."""

from __future__ import annotations

from datetime import timedelta

import httpx
import msgspec
from handoff_carrier_allocation.adapters.config import HttpTenderRoute
from handoff_carrier_allocation.adapters.http_tenders import tender_over_http
from handoff_events.contracts import TenderAccepted, TenderDeclined, TenderRequested
from handoff_events.contracts.carrier import TenderedShipment

from services.carrier_allocation.tests.factories import NOW, request

ROUTE = HttpTenderRoute(carrier="velo", url="http://velo.test/tenders", timeout_s=1.0, retries=2)
REQ = request("shp_1")
TENDER = TenderRequested(
    tender_id="tnd_1",
    shipment_id="shp_1",
    carrier="velo",
    service="same_day",
    service_level="same_day",
    attempt=1,
    requested_at=NOW,
    respond_by=NOW + timedelta(seconds=30),
    shipment=TenderedShipment(
        origin_location_id="WH-BER-1",
        origin_postal_code="10115",
        origin_country="DE",
        destination=REQ.destination,
        parcels=REQ.parcels,
    ),
)


def client_answering(*responses):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        item = responses[min(len(calls) - 1, len(responses) - 1)]
        if isinstance(item, Exception):
            raise item
        return item

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), calls


async def ask(client):
    return await tender_over_http(client, ROUTE, TENDER, lambda: NOW, backoff_s=0.0)


async def test_acceptance_becomes_tender_accepted():
    client, calls = client_answering(
        httpx.Response(200, json={"accepted": True, "tracking_number": "VL1", "label_ref": "L1"})
    )
    reply = await ask(client)
    assert isinstance(reply, TenderAccepted)
    assert (reply.tender_id, reply.tracking_number, reply.label_ref) == ("tnd_1", "VL1", "L1")
    assert calls[0].headers["idempotency-key"] == "tnd_1"
    sent = msgspec.json.decode(calls[0].content, type=TenderRequested)
    assert sent == TENDER


async def test_decline_and_client_errors_are_declines():
    client, _ = client_answering(httpx.Response(200, json={"accepted": False, "reason": "full"}))
    reply = await ask(client)
    assert isinstance(reply, TenderDeclined) and reply.reason == "full"
    client, calls = client_answering(httpx.Response(422, json={}))
    reply = await ask(client)
    assert isinstance(reply, TenderDeclined) and reply.reason == "http_422"
    assert len(calls) == 1  # a 4xx is not retried


async def test_invalid_answer_is_a_decline():
    client, _ = client_answering(httpx.Response(200, json={"accepted": True}))
    reply = await ask(client)
    assert isinstance(reply, TenderDeclined) and reply.reason.startswith("invalid_answer")


async def test_transport_errors_and_5xx_are_retried_within_the_budget():
    client, calls = client_answering(
        httpx.ConnectError("refused"),
        httpx.Response(503),
        httpx.Response(200, json={"accepted": True, "tracking_number": "VL2", "label_ref": "L2"}),
    )
    reply = await ask(client)
    assert isinstance(reply, TenderAccepted) and len(calls) == 3
    client, calls = client_answering(httpx.ReadTimeout("slow"))
    reply = await ask(client)
    assert isinstance(reply, TenderDeclined)
    assert reply.reason.startswith("carrier_unreachable") and len(calls) == 3


async def test_relay_bounds_the_posts_in_flight():
    import asyncio

    from handoff_carrier_allocation.adapters.config import TenderRoutes
    from handoff_carrier_allocation.adapters.http_tenders import HttpTenderRelay
    from handoff_carrier_allocation.settings import AllocationSettings
    from handoff_events.envelope import new_envelope

    open_now = peak = 0

    async def carrier(request: httpx.Request) -> httpx.Response:
        nonlocal open_now, peak
        open_now += 1
        peak = max(peak, open_now)
        await asyncio.sleep(0.01)
        open_now -= 1
        body = {"accepted": True, "tracking_number": "VL12345678", "label_ref": "lbl_1"}
        return httpx.Response(200, json=body)

    client = httpx.AsyncClient(transport=httpx.MockTransport(carrier))
    relay = HttpTenderRelay(
        AllocationSettings(),
        TenderRoutes(http={"velo": ROUTE}),
        client=client,
        clock=lambda: NOW,
        max_in_flight=4,
    )
    tenders = [
        new_envelope(
            msgspec.structs.replace(TENDER, tender_id=f"tnd_{n}", shipment_id=f"shp_{n}"),
            source="test",
            tenant_id="acme",
            id=f"evt_{n}",
        )
        for n in range(40)
    ]
    answers = await asyncio.gather(*(relay._ask(env) for env in tenders))
    await client.aclose()
    assert peak == 4
    assert all(a is not None and isinstance(a[2].data, TenderAccepted) for a in answers)
    assert [a[1] for a in answers if a] == [f"shp_{n}" for n in range(40)]
