"""Schemathesis against every HTTP API's OpenAPI document, served in-process (ASGI, fakes at
the Kafka edge): order intake, returns, rate shopping's quotes, tracking's queries and
its carrier webhook. Whatever schemathesis generates (valid, invalid, hostile), no
answer is a 5xx, and every rejection is an `application/problem+json` document that
names a reason. (order_intake's own test fuzzes its edge against a real broker.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import schemathesis
from handoff_events.envelope import Envelope
from handoff_events.runtime.http import Problem, TenantAuth, parse_api_keys, problem_handler
from handoff_events.runtime.settings import ServiceSettings
from handoff_order_intake.bootstrap import build_app as build_order_intake
from handoff_order_intake.settings import OrderIntakeSettings
from handoff_rate_shopping.bootstrap import build_app as build_rate_shopping
from handoff_rate_shopping.settings import RateShoppingSettings
from handoff_returns.bootstrap import build_app as build_returns
from handoff_returns.settings import ReturnsSettings
from handoff_tracking.adapters.read_model import KpiReadModel, ShipmentReadModel
from handoff_tracking.domain.fold import fold_all
from handoff_tracking.entrypoints.http import ShipmentQueries
from handoff_tracking.ingress.code_tables import load_code_tables
from handoff_tracking.ingress.ownership import OwnershipFollower, OwnershipIndex
from handoff_tracking.ingress.webhook import CarrierWebhook
from handoff_tracking.openapi import openapi_document as tracking_openapi
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from services.tracking.tests.fold_factories import allocated, inp, observed, requested

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "config"
KEYS = "acme:acme-key,globex:globex-key"
AUTH = {"Authorization": "Bearer acme-key"}
NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


class FakePublisher:
    """The Kafka edge: acknowledges everything (the broker is not what is fuzzed here)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, Envelope[Any]]] = []

    async def publish(self, topic: str, key: str, envelope: Envelope[Any]) -> tuple[int, int]:
        self.published.append((topic, key, envelope))
        return 0, len(self.published)

    async def publish_many(self, items: list[tuple[str, str, Envelope[Any]]]) -> None:
        self.published.extend(items)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass


def _with_fake_publisher(service: Any) -> Any:
    service.publisher = FakePublisher()
    return service.http


def order_intake_app() -> Any:
    return _with_fake_publisher(
        build_order_intake(OrderIntakeSettings(api_keys=KEYS, config_dir=CONFIG), clock=lambda: NOW)
    )


def returns_app() -> Any:
    return _with_fake_publisher(
        build_returns(ReturnsSettings(api_keys=KEYS, config_dir=CONFIG), clock=lambda: NOW)
    )


def rate_shopping_app() -> Any:
    settings_ = RateShoppingSettings(api_keys=KEYS, config_dir=CONFIG, follow_history=False)
    return _with_fake_publisher(build_rate_shopping(settings_, clock=lambda: NOW))


class _Loaded(OwnershipFollower):
    """Ownership without Kafka: swift owns SW123456789, caught up."""

    def __init__(self, index: OwnershipIndex):
        super().__init__(ServiceSettings(), index)

    async def start(self) -> None:
        pass

    async def caught_up(self, timeout_s: float) -> bool:
        return True


class _Views(SimpleNamespace):
    pass


def tracking_app() -> Any:
    views = _Views(shipments=ShipmentReadModel(), kpis=KpiReadModel(), caught_up=True)
    state = fold_all([inp(requested("shp_1"), "acme"), inp(allocated("shp_1"), "acme"),
                      inp(observed("delivered", 90, shipment_id="shp_1"), "acme")])  # fmt: skip
    assert state is not None
    views.shipments.apply(state)
    queries = ShipmentQueries(views, TenantAuth(parse_api_keys(KEYS)))  # type: ignore[arg-type]
    webhook = CarrierWebhook(
        tables=load_code_tables(CONFIG / "carrier-codes"),
        secrets={"swift": ("swift-secret",)},
        ownership=_Loaded(OwnershipIndex()),
        clock=lambda: NOW,
        replay_window=timedelta(minutes=5),
        max_body_bytes=20_000,
        max_events=5,
    )
    document = tracking_openapi()

    async def openapi(_: Request) -> JSONResponse:
        return JSONResponse(document)

    app = Starlette(
        routes=[*queries.routes(), webhook.route(), Route("/openapi.json", openapi)],
        exception_handlers={Problem: problem_handler},
    )
    app.state.app = SimpleNamespace(publisher=FakePublisher(), _on_stop=[])
    return app


APPS = {
    "order_intake": order_intake_app,
    "returns": returns_app,
    "rate_shopping": rate_shopping_app,
    "tracking": tracking_app,
}


def _problem_check(response: Any) -> None:
    status = response.status_code
    assert status < 500, f"{status}: {response.text[:300]}"
    if status >= 400:
        content_type = response.headers.get("content-type") or [""]
        if isinstance(content_type, list):  # schemathesis keeps every value of a header
            content_type = content_type[0]
        assert content_type.startswith("application/problem+json"), (
            f"{status} without a problem document: {response.text[:200]}"
        )
        doc = response.json()
        assert doc.get("reason"), f"problem without a reason: {doc}"


@pytest.mark.parametrize("service", sorted(APPS))
def test_every_operation_is_fuzzed(service: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", APPS[service]())
    operations = [op.ok() for op in schema.get_all_operations()]
    assert operations, f"{service} documents no operation"


def _fuzz(service: str) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", APPS[service]())
    operations = [op.ok() for op in schema.get_all_operations()]
    cases = st.one_of(*(op.as_strategy(mode) for op in operations for mode in GenerationMode))

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        database=None,
    )
    @given(case=cases)
    def run(case: Any) -> None:
        response = case.call(headers=AUTH)
        case.validate_response(response, checks=[not_a_server_error])
        _problem_check(response)

    run()


@pytest.mark.parametrize("service", sorted(APPS))
def test_no_generated_request_gets_a_5xx_and_every_rejection_is_a_problem(service: str) -> None:
    _fuzz(service)
