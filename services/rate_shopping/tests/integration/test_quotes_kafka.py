"""Rate shopping against the real broker: requests in on the intake/returns topics, quotes out.

Each test provisions the catalogue under its own topic prefix and runs the
service as `build_app(...)` would in production (engine, history follower),
with a fixed clock.
"""

from __future__ import annotations

import dataclasses
import http.server
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from handoff_events import topics
from handoff_events.contracts import (
    Event,
    RatesQuoted,
    RatingFailed,
    ShipmentRejected,
    ShipmentRequested,
    ShipmentUpdate,
)
from handoff_events.envelope import Envelope, decode, encode, new_envelope
from handoff_events.provision import provision
from handoff_events.runtime.app import ServiceApp
from handoff_events.topics import Names
from handoff_events.values import Reason
from handoff_rate_shopping.bootstrap import build_app
from handoff_rate_shopping.domain.catalogue import Catalogue, QuoteApi
from handoff_rate_shopping.quoting import Quoter
from handoff_rate_shopping.settings import RateShoppingSettings

from tests.support.streams import produce_raw, read_topic, until

pytestmark = pytest.mark.kafka

NOW = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)
REQUESTED_AT = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin
CET = timezone(timedelta(hours=1))


@dataclass
class Harness:
    bootstrap: str
    prefix: str
    state_dir: Path
    apps: list[ServiceApp]

    @property
    def names(self) -> Names:
        return Names(self.prefix)

    async def start(self, catalogue: Catalogue, **settings: Any) -> ServiceApp:
        app = build_app(
            RateShoppingSettings(
                topic_prefix=self.prefix,
                partitions=3,
                kafka_bootstrap_servers=self.bootstrap,
                state_dir=self.state_dir,
                instance_id="a",
                **settings,
            ),
            catalogue=catalogue,
            clock=lambda: NOW,
        )
        await app.start()
        self.apps.append(app)
        engine = app.engines[0]
        await until(lambda: engine.ready and len(engine.tasks) == 3, 45.0, "quotes stage ready")
        return app

    async def produce(self, topic: str, *envelopes: Envelope[Any]) -> None:
        records = []
        for envelope in envelopes:
            value, headers = encode(envelope)
            records.append((envelope.subject, value, headers))
        await produce_raw(self.bootstrap, self.names(topic), records)

    async def outputs(self, expect: int) -> list[Envelope[Event]]:
        records = await read_topic(self.bootstrap, self.names(topics.QUOTES), expect, timeout=30.0)
        return [decode(r.value, r.headers) for r in records]


@pytest.fixture
async def harness(kafka_bootstrap: str, unique_name: str, tmp_path: Path) -> AsyncIterator[Harness]:
    prefix = f"{unique_name}."
    report = await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    assert report.ok
    h = Harness(kafka_bootstrap, prefix, tmp_path, [])
    try:
        yield h
    finally:
        for app in h.apps:
            await app.stop()


def requested(shipment: ShipmentRequested, ce_id: str) -> Envelope[ShipmentRequested]:
    return new_envelope(
        shipment, source="handoff/order_intake", tenant_id="acme", id=ce_id, time=REQUESTED_AT
    )


async def test_a_request_is_quoted_by_every_eligible_carrier(
    harness: Harness, catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    berlin = shipment_factory(
        shipment_id="shp_ber", service_level="standard", requested_at=REQUESTED_AT
    )
    nowhere = shipment_factory(
        shipment_id="shp_fr", dest_country="FR", dest_postal="75001", requested_at=REQUESTED_AT
    )
    rejected = ShipmentRejected(
        shipment_id="shp_bad",
        order_id="X",
        rejected_at=REQUESTED_AT,
        reasons=[Reason(code="unknown_origin")],
    )
    ret = shipment_factory(
        shipment_id="shp_ret",
        origin="WH-MUC-1",
        dest_postal="04129",
        requested_at=REQUESTED_AT,
        is_return=True,
    )
    await harness.produce(
        topics.INTAKE_SHIPMENTS,
        requested(berlin, "evt-1"),
        requested(nowhere, "evt-2"),
        new_envelope(rejected, source="handoff/order_intake", tenant_id="acme", id="evt-3"),
    )
    await harness.produce(topics.RETURN_SHIPMENTS, requested(ret, "evt-4"))
    await harness.start(catalogue, follow_history=False)

    outputs = {env.subject: env for env in await harness.outputs(expect=3)}
    assert set(outputs) == {"shp_ber", "shp_fr", "shp_ret"}  # the rejection is not rated

    quoted = outputs["shp_ber"]
    assert isinstance(quoted.data, RatesQuoted)
    assert quoted.tenant_id == "acme"
    assert quoted.type == "handoff.rates.quoted.v1"
    # every carrier and service that can do a standard Berlin → Berlin delivery
    assert {(q.carrier, q.service) for q in quoted.data.quotes} == {
        ("nordpost", "parcel"),
        ("swift", "express"),
        ("swift", "economy"),
        ("velo", "sameday"),
        ("gigly", "tonight"),
        ("gigly", "tomorrow_evening"),
    }
    assert {q.hub_id for q in quoted.data.quotes if q.carrier == "nordpost"} == {"NP-BER"}
    # deterministic: the same input id gives the same output id
    again = new_envelope(quoted.data, source="x", tenant_id="acme", caused_by="evt-1")
    assert quoted.id == again.id

    failed = outputs["shp_fr"]
    assert isinstance(failed.data, RatingFailed)
    assert failed.data.reasons[0].code == "no_eligible_carrier"
    assert {i.carrier for i in failed.data.ineligible} == {"nordpost", "swift", "velo", "gigly"}

    ret_quote = outputs["shp_ret"]
    assert isinstance(ret_quote.data, RatesQuoted)
    assert {q.hub_id for q in ret_quote.data.quotes} >= {"NP-MUC", "SW-MUC"}


class _SlowCarrier(http.server.BaseHTTPRequestHandler):
    """A carrier quoting API that answers far too late."""

    delay_s = 3.0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", "0")))
        time.sleep(self.delay_s)
        body = b'{"prices": []}'
        try:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up long ago

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def slow_carrier_url() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowCarrier)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/quote"
    finally:
        server.shutdown()
        server.server_close()


async def test_a_carrier_api_that_does_not_answer_in_time_is_left_out(
    harness: Harness,
    catalogue: Catalogue,
    shipment_factory: Callable[..., ShipmentRequested],
    slow_carrier_url: str,
) -> None:
    api = QuoteApi(
        url=slow_carrier_url, timeout_s=0.3, attempts=2, budget_s=0.8, failure_threshold=5
    )
    with_api = Catalogue(
        tuple(
            dataclasses.replace(c, quote_api=api) if c.code == "swift" else c
            for c in catalogue.carriers
        )
    )
    await harness.start(with_api, follow_history=False)
    shipment = shipment_factory(
        shipment_id="shp_slow", service_level="next_day", requested_at=REQUESTED_AT
    )
    await harness.produce(topics.INTAKE_SHIPMENTS, requested(shipment, "evt-slow"))

    (output,) = await harness.outputs(expect=1)
    assert isinstance(output.data, RatesQuoted)
    assert "swift" not in {q.carrier for q in output.data.quotes}
    assert {q.carrier for q in output.data.quotes} == {"velo", "gigly"}
    swift = [i for i in output.data.ineligible if (i.carrier, i.service) == ("swift", None)]
    assert [r.code for r in swift[0].reasons] == ["carrier_timeout"]


def delivered(shipment_id: str, hours: float) -> Envelope[ShipmentUpdate]:
    picked = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    update = ShipmentUpdate(
        update_id=f"upd_{shipment_id}",
        shipment_id=shipment_id,
        order_id="H-1",
        tenant_id="acme",
        milestone="delivered",
        status="delivered",
        occurred_at=picked + timedelta(hours=hours),
        carrier="swift",
        service="express",
        lane="DE-10>DE-10",
        picked_up_at=picked,
        delivered_at=picked + timedelta(hours=hours),
    )
    return new_envelope(
        update, source="handoff/tracking", tenant_id="acme", id=f"evt_{shipment_id}",
        type="handoff.shipment.update.delivered.v1",
    )  # fmt: skip


async def test_observed_transit_history_changes_the_on_time_probability(
    harness: Harness, catalogue: Catalogue, shipment_factory: Callable[..., ShipmentRequested]
) -> None:
    app = await harness.start(catalogue, follow_history=True, history_min_observations=5)
    promise = datetime(2026, 11, 24, 18, 0, tzinfo=CET)  # picked up Mon 17:00 CET → 25 h allowed

    def shipment(shipment_id: str) -> ShipmentRequested:
        return shipment_factory(
            shipment_id=shipment_id,
            service_level="next_day",
            requested_at=REQUESTED_AT,
            promised_by=promise,
        )

    await harness.produce(topics.INTAKE_SHIPMENTS, requested(shipment("shp_h1"), "evt-h1"))
    (first,) = await harness.outputs(expect=1)

    # four deliveries took 20 h, one took 45 h (and one is a duplicate read)
    updates = [delivered(f"shp_d{i}", 20.0 if i < 4 else 45.0) for i in range(5)]
    await harness.produce(topics.UPDATES, *updates, updates[0])
    quoter: Quoter = app.http.state.quoter
    await until(lambda: len(quoter.history) == 5, 30.0, "five observations in the history")

    await harness.produce(topics.INTAKE_SHIPMENTS, requested(shipment("shp_h2"), "evt-h2"))
    outputs = {env.subject: env for env in await harness.outputs(expect=2)}

    def express(env: Envelope[Event]) -> Any:
        assert isinstance(env.data, RatesQuoted)
        return next(q for q in env.data.quotes if (q.carrier, q.service) == ("swift", "express"))

    before, after = express(first), express(outputs["shp_h2"])
    assert (before.transit_basis, before.on_time_probability) == ("advertised", 0.92)
    assert (after.transit_basis, after.on_time_probability) == ("observed", 0.8)
    assert after.p50_delivery_date.isoformat() == "2026-11-24"
    assert after.p90_delivery_date.isoformat() == "2026-11-25"
