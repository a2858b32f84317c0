"""Wires the returns service: policies and return centres from files, the two stream stages,
the HTTP edge. Tests pass `config` and `clock` to replace the files and the clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from handoff_events import topics
from handoff_events.envelope import utcnow
from handoff_events.runtime.app import ServiceApp
from handoff_events.runtime.http import TenantAuth, parse_api_keys
from handoff_events.runtime.publisher import EventPublisher
from handoff_events.stream.api import MsgpackCodec, StatefulProcessor
from starlette.requests import Request

from handoff_returns.adapters.policy_file import ReturnsConfig, load_config
from handoff_returns.domain.ledger import ShipmentRecord, expiry_at
from handoff_returns.domain.requests import OrderIndex
from handoff_returns.entrypoints.http import SERVICE, routes
from handoff_returns.handlers import LedgerStage, handle_requests
from handoff_returns.openapi import openapi_document
from handoff_returns.settings import ReturnsSettings

ORDERS_CHANGELOG = "handoff.returns.orders-changelog.v1"
LEDGER_CHANGELOG = "handoff.returns.ledger-changelog.v1"


def processors(
    config: ReturnsConfig, settings: ReturnsSettings
) -> tuple[StatefulProcessor[OrderIndex], StatefulProcessor[ShipmentRecord]]:
    requests: StatefulProcessor[OrderIndex] = StatefulProcessor(
        service=SERVICE,
        stage="requests",
        inputs=[topics.RETURN_REQUESTS, topics.RETURN_ORDER_SHIPMENTS],
        changelog=ORDERS_CHANGELOG,
        codec=MsgpackCodec(OrderIndex),
        handle=handle_requests,
    )
    stage = LedgerStage(policies=config.policies, centres=config.centres)
    ledger: StatefulProcessor[ShipmentRecord] = StatefulProcessor(
        service=SERVICE,
        stage="ledger",
        inputs=[
            topics.RETURN_REQUESTS_BY_SHIPMENT,
            topics.UPDATES,
            topics.INTAKE_SHIPMENTS,
            topics.RETURNS,
        ],
        changelog=LEDGER_CHANGELOG,
        codec=MsgpackCodec(ShipmentRecord),
        handle=stage.handle,
        punctuate=stage.expire,
        punctuate_every_s=settings.expiry_check_interval_s,
        due=expiry_at,
    )
    return requests, ledger


def build_app(
    settings: ReturnsSettings | None = None,
    *,
    config: ReturnsConfig | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ServiceApp:
    settings = settings or ReturnsSettings()
    config = config or load_config(settings.policies_path(), settings.locations_path())
    auth = TenantAuth(parse_api_keys(settings.api_keys))

    def publisher(request: Request) -> EventPublisher:
        app: ServiceApp = request.app.state.app
        return app.publisher

    return ServiceApp(
        SERVICE,
        settings,
        processors=processors(config, settings),
        routes=routes(auth, publisher, clock or utcnow),
        openapi=openapi_document(),
        clock=clock,
    )
