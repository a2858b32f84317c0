"""Simulated carriers: deterministic answers, carrier-specific tracking numbers, the HTTP face."""

from __future__ import annotations

import argparse
import re
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
import pytest
from handoff_events.contracts import TenderAnswer, TenderRequested
from handoff_events.contracts.carrier import TenderedShipment
from handoff_events.values import Address, Parcel
from handoff_sim.tender_responder import (
    CarrierBehaviour,
    ResponderConfig,
    answer_for,
    http_app,
    parse_carrier,
    reply_event,
    rng_for,
    tracking_number,
)

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def tender(carrier: str, n: int = 1) -> TenderRequested:
    return TenderRequested(
        tender_id=f"tnd_{n}",
        shipment_id=f"shp_{n}",
        carrier=carrier,
        service="parcel",
        service_level="next_day",
        attempt=1,
        requested_at=NOW,
        respond_by=NOW + timedelta(seconds=30),
        shipment=TenderedShipment(
            origin_location_id="WH-BER-1",
            origin_postal_code="10115",
            origin_country="DE",
            destination=Address(
                name="Ada", line1="Torstr. 1", city="Berlin", postal_code="10119", country="DE"
            ),
            parcels=[Parcel(parcel_id="P1", weight_g=1, length_mm=1, width_mm=1, height_mm=1)],
        ),
    )


@pytest.mark.parametrize(
    ("carrier", "pattern"),
    [
        ("nordpost", r"^NP\d{9}DE$"),
        ("swift", r"^SW\d{9}$"),
        ("velo", r"^VL\d{8}$"),
        ("gigly", r"^GG-[A-Z0-9]{8}$"),
        ("acmecourier", r"^AC\d{10}$"),
    ],
)
def test_tracking_numbers_follow_each_carriers_format(carrier, pattern):
    for n in range(20):
        assert re.match(pattern, tracking_number(carrier, rng_for(7, f"t{n}")))


def test_answers_are_deterministic_per_seed_and_tender():
    config = ResponderConfig(carriers={"swift": CarrierBehaviour(accept=0.5)}, seed=3)
    answers = [answer_for(tender("swift", n), config) for n in range(200)]
    assert answers == [answer_for(tender("swift", n), config) for n in range(200)]
    accepted = sum(1 for decision, _ in answers if decision == "accept")
    assert 60 < accepted < 140  # a fair coin, not a constant
    other_seed = ResponderConfig(carriers=config.carriers, seed=4)
    assert answers != [answer_for(tender("swift", n), other_seed) for n in range(200)]


@pytest.mark.parametrize(
    ("behaviour", "decision"),
    [
        (CarrierBehaviour(accept=1.0), "accept"),
        (CarrierBehaviour(accept=0.0), "decline"),
        (CarrierBehaviour(accept=1.0, silent=1.0), "silent"),
    ],
)
def test_extreme_probabilities(behaviour, decision):
    config = ResponderConfig(carriers={"nordpost": behaviour})
    for n in range(10):
        got, answer = answer_for(tender("nordpost", n), config)
        assert got == decision
        reply = reply_event(tender("nordpost", n), answer, NOW)
        assert type(reply).__name__ == (
            "TenderAccepted" if decision == "accept" else "TenderDeclined"
        )


async def test_http_variant_answers_accept_and_decline():
    config = ResponderConfig(
        carriers={"velo": CarrierBehaviour(accept=1.0), "gigly": CarrierBehaviour(accept=0.0)}
    )
    transport = httpx.ASGITransport(app=http_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://sim") as client:
        r = await client.post("/tenders", content=msgspec.json.encode(tender("velo")))
        assert r.status_code == 200
        answer = msgspec.json.decode(r.content, type=TenderAnswer)
        assert answer.accepted and answer.tracking_number and answer.tracking_number[:2] == "VL"
        r = await client.post("/tenders", content=msgspec.json.encode(tender("gigly")))
        assert msgspec.json.decode(r.content, type=TenderAnswer).accepted is False
        r = await client.post("/tenders", content=msgspec.json.encode(tender("swift")))
        assert r.status_code == 404
        r = await client.post("/tenders", content=b'{"tender_id": 1}')
        assert r.status_code == 422 and r.json()["reason"] == "schema_violation"


def test_cli_carrier_specs():
    assert parse_carrier("nordpost") == ("nordpost", CarrierBehaviour())
    assert parse_carrier("gigly:accept=0.5,silent=0.1,delay=0.2") == (
        "gigly",
        CarrierBehaviour(accept=0.5, silent=0.1, delay_s=0.2),
    )
    with pytest.raises(argparse.ArgumentTypeError):
        parse_carrier("gigly:accept=2")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_carrier("gigly:speed=1")


class RecordingPublisher:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, object]] = []

    async def publish(self, topic: str, key: str, envelope: object) -> None:
        self.sent.append((topic, key, envelope))


async def test_topic_face_leaves_http_only_carriers_to_the_relay():
    from handoff_events.envelope import new_envelope
    from handoff_events.runtime.settings import ServiceSettings
    from handoff_sim.tender_responder import TopicResponder

    config = ResponderConfig(
        carriers={"velo": CarrierBehaviour(accept=1.0), "swift": CarrierBehaviour(accept=1.0)},
        http_only=frozenset({"velo"}),
    )
    responder = TopicResponder(ServiceSettings(), config, clock=lambda: NOW)
    publisher = RecordingPublisher()
    responder._publisher = publisher  # type: ignore[assignment]
    for n, carrier in enumerate(("velo", "swift")):
        env = new_envelope(
            tender(carrier, n), source="test", tenant_id="acme", id=f"evt_{n}", time=NOW
        )
        await responder._answer(env)
    assert [key for _, key, _ in publisher.sent] == ["shp_1"]  # swift's tender only
    assert responder.stats.accepted == 1


def test_cli_http_only_flag(monkeypatch):
    from handoff_sim import tender_responder

    seen: list[ResponderConfig] = []

    async def fake_run(settings, config, **_):
        seen.append(config)

    monkeypatch.setattr(tender_responder, "run_tender_responder", fake_run)
    tender_responder.main(["--carrier", "velo", "--http-only", "velo", "--http-port", "1"])
    assert seen[0].http_only == frozenset({"velo"}) and seen[0].http_port == 1
