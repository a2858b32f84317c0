"""The control tower's HTTP edge.

GET /                         the page (also /shipments/{id}: the same page, opened on that shipment)
GET /static/…                 the page's own JS and CSS (no CDN: it works offline)
GET /api/summary              shipments by status, open exceptions, headline KPIs, read-model progress
GET /api/exceptions?limit=N   the exception queue, longest-waiting first
GET /api/shipments/{id}       one shipment's state, open exceptions and timeline
GET /api/carriers             carrier scorecards (from KPI snapshots) and active shipments
GET /api/services             per service: up, records/s (with a short series), lag, dead letters

The page polls these every ~1.5 s. The tower is an operator's tool for the whole
platform, so it is not tenant-scoped: deploy it behind the operators' access control.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from handoff_events.runtime.http import Problem, json_response
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from handoff_control_tower.adapters.feeds import ReadModel
from handoff_control_tower.adapters.scraper import MetricsScraper
from handoff_control_tower.domain.board import open_exceptions
from handoff_control_tower.entrypoints import views

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ControlTowerApi:
    def __init__(
        self,
        model: ReadModel,
        scraper: MetricsScraper,
        queue_limit: int,
        clock: Clock = _utcnow,
    ):
        self.model = model
        self.scraper = scraper
        self.queue_limit = queue_limit
        self.clock = clock

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page),
            Route("/shipments/{shipment_id:path}", self.page),
            Route("/api/summary", self.summary),
            Route("/api/exceptions", self.exceptions),
            Route("/api/shipments/{shipment_id:path}", self.shipment),
            Route("/api/carriers", self.carriers),
            Route("/api/services", self.services),
            Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
        ]

    async def page(self, request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    async def summary(self, request: Request) -> Response:
        doc = views.summary(
            self.model.board,
            self.model.kpis.scorecards(),
            caught_up=self.model.caught_up,
            records_read=self.model.records_read,
            now=self.clock(),
        )
        return json_response(doc)

    async def exceptions(self, request: Request) -> Response:
        raw = request.query_params.get("limit", str(self.queue_limit))
        if not raw.isdigit() or not 1 <= int(raw) <= 5000:
            raise Problem(
                400,
                "Invalid limit",
                "limit is 1..5000",
                reason="invalid_query",
                field="limit",
                value=raw,
            )
        return json_response(views.exceptions(self.model.board, int(raw)))

    async def shipment(self, request: Request) -> Response:
        shipment_id = request.path_params["shipment_id"]
        state = self.model.board.get(shipment_id)
        if state is None:
            raise Problem(
                404,
                "Shipment not found",
                "no state for this shipment on the state topic (yet)",
                reason="not_found",
                field="shipment_id",
                value=shipment_id,
            )
        return json_response(views.shipment(state, open_exceptions(state)))

    async def carriers(self, request: Request) -> Response:
        cards = self.model.kpis.scorecards()
        return json_response(views.carriers(cards, self.model.board.active_by_carrier()))

    async def services(self, request: Request) -> Response:
        histories = list(self.scraper.histories.values())
        return json_response(views.services(histories, self.scraper.every_s))
