"""Shipment queries over HTTP, scoped to the caller's tenant, served from the read models.

GET /v1/shipments/{id}                  current state (or `?as_of=<RFC 3339>`: refolded then)
GET /v1/shipments/{id}/events           the event history, in event-time order
GET /v1/shipments?status=&cursor=&limit= the tenant's shipments, paged by id
GET /v1/kpis?carrier=&day=              the tenant's KPI snapshots

Another tenant's shipment is a 404, exactly like a missing one. Until the read
models have caught up with their topics the answers would be incomplete, so the
routes answer 503 (with Retry-After) instead. The OpenAPI document of these
routes is in `handoff_tracking.openapi`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Protocol

import msgspec
from handoff_events.contracts import HistoryEntry, KpiSnapshot, ShipmentState
from handoff_events.runtime.http import Problem, TenantAuth, json_response
from handoff_events.runtime.metrics import HTTP_REQUESTS
from handoff_events.values import AwareDatetime
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from handoff_tracking.adapters.read_model import KpiReadModel, ShipmentReadModel
from handoff_tracking.domain.fold import state_as_of
from handoff_tracking.domain.kpis import snapshot_rates

MAX_LIMIT = 500


class ShipmentEvents(msgspec.Struct, frozen=True, kw_only=True):
    shipment_id: str
    status: str
    events: list[HistoryEntry]


class ShipmentSummary(msgspec.Struct, frozen=True, kw_only=True):
    shipment_id: str
    order_id: str
    status: str
    sub_status: str | None
    carrier: str | None
    tracking_number: str | None
    promised_by: AwareDatetime | None
    estimated_delivery_date: date | None
    delivered_at: AwareDatetime | None
    exceptions: int
    updated_at: AwareDatetime


class ShipmentPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[ShipmentSummary]
    next_cursor: str | None


class KpiRates(msgspec.Struct, frozen=True, kw_only=True):
    on_time_rate: float | None
    first_attempt_success_rate: float | None
    exception_rate: float | None
    transit_hours_avg: float | None
    transit_hours_p90: float | None
    cost_per_delivery_minor: float | None


class KpiEntry(msgspec.Struct, frozen=True, kw_only=True):
    snapshot: KpiSnapshot
    rates: KpiRates


class KpiPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[KpiEntry]


def _summary(state: ShipmentState) -> ShipmentSummary:
    return ShipmentSummary(
        shipment_id=state.shipment_id,
        order_id=state.order_id,
        status=state.status,
        sub_status=state.sub_status,
        carrier=state.carrier,
        tracking_number=state.tracking_number,
        promised_by=state.promised_by,
        estimated_delivery_date=state.estimated_delivery_date,
        delivered_at=state.delivered_at,
        exceptions=len(state.exceptions),
        updated_at=state.updated_at,
    )


def _as_of(raw: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Problem(
            400,
            "Invalid query",
            "as_of must be RFC 3339",
            reason="invalid_query",
            field="as_of",
            value=raw,
        ) from None
    if moment.tzinfo is None:
        raise Problem(
            400,
            "Invalid query",
            "as_of needs an offset",
            reason="invalid_query",
            field="as_of",
            value=raw,
        )
    return moment


def _limit(raw: str | None, default: int) -> int:
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise Problem(
            400,
            "Invalid query",
            f"limit must be an integer in 1..{MAX_LIMIT}",
            reason="invalid_query",
            field="limit",
            value=raw,
        )
    return int(raw)


class Views(Protocol):
    """What the queries read: the read models and whether they are complete."""

    @property
    def shipments(self) -> ShipmentReadModel: ...

    @property
    def kpis(self) -> KpiReadModel: ...

    @property
    def caught_up(self) -> bool: ...


class ShipmentQueries:
    def __init__(self, models: Views, auth: TenantAuth, page_limit: int = 100):
        self.models = models
        self.auth = auth
        self.page_limit = page_limit

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/shipments", self._counted("shipments", self.list_shipments)),
            Route("/v1/shipments/{shipment_id}", self._counted("shipment", self.get_shipment)),
            Route(
                "/v1/shipments/{shipment_id}/events",
                self._counted("shipment_events", self.get_events),
            ),
            Route("/v1/kpis", self._counted("kpis", self.get_kpis)),
        ]

    def _counted(
        self, name: str, route: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                response = await route(request)
            except Problem as problem:
                HTTP_REQUESTS.labels("tracking", name, str(problem.status)).inc()
                raise
            HTTP_REQUESTS.labels("tracking", name, str(response.status_code)).inc()
            return response

        return endpoint

    def _tenant(self, request: Request) -> str:
        tenant = self.auth.tenant(request)
        if not self.models.caught_up:
            raise Problem(503, "Not ready", "the read model is still loading", reason="not_ready")
        return tenant

    def _shipment(self, request: Request) -> ShipmentState:
        tenant = self._tenant(request)
        shipment_id = request.path_params["shipment_id"]
        state = self.models.shipments.get(tenant, shipment_id)
        if state is None:
            raise Problem(
                404,
                "Not found",
                "no such shipment for this tenant",
                reason="not_found",
                field="shipment_id",
                value=shipment_id,
            )
        return state

    async def get_shipment(self, request: Request) -> Response:
        state = self._shipment(request)
        raw = request.query_params.get("as_of")
        if raw is None:
            return json_response(state)
        then = state_as_of(state, _as_of(raw))
        if then is None:
            raise Problem(
                404,
                "Not found",
                "the shipment had no events by then",
                reason="not_found",
                field="as_of",
                value=raw,
            )
        return json_response(then)

    async def get_events(self, request: Request) -> Response:
        state = self._shipment(request)
        body = ShipmentEvents(
            shipment_id=state.shipment_id, status=state.status, events=state.history
        )
        return json_response(body)

    async def list_shipments(self, request: Request) -> Response:
        tenant = self._tenant(request)
        statuses = {
            s for raw in request.query_params.getlist("status") for s in raw.split(",") if s
        }
        limit = _limit(request.query_params.get("limit"), self.page_limit)
        items, cursor = self.models.shipments.page(
            tenant, statuses or None, request.query_params.get("cursor"), limit
        )
        return json_response(ShipmentPage(items=[_summary(s) for s in items], next_cursor=cursor))

    async def get_kpis(self, request: Request) -> Response:
        tenant = self._tenant(request)
        carrier = request.query_params.get("carrier")
        day = request.query_params.get("day")
        items = [
            KpiEntry(snapshot=s, rates=KpiRates(**snapshot_rates(s)))
            for s in self.models.kpis.for_tenant(tenant)
            if (carrier is None or s.carrier == carrier)
            and (day is None or s.day.isoformat() == day)
        ]
        return json_response(KpiPage(items=items))
