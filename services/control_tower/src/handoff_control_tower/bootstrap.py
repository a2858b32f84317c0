"""Wires the control tower: two topic followers, the metrics scraper and the HTTP edge.

It does not use `ServiceApp`: the tower has no stream stage and never produces,
so it holds no producer (least privilege: its Kafka principal only reads the two
public topics), and it is ready only once both followers have caught up.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from datetime import UTC, datetime

import uvicorn
from handoff_events.runtime.http import Problem, json_response, problem_handler
from handoff_events.runtime.logging import configure_logging, get_logger
from handoff_events.runtime.metrics import READY
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from handoff_control_tower.adapters.feeds import ReadModel
from handoff_control_tower.adapters.scraper import MetricsScraper
from handoff_control_tower.entrypoints.http import ControlTowerApi
from handoff_control_tower.settings import SERVICE, ControlTowerSettings

log = get_logger("handoff.control_tower")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ControlTower:
    """The whole service: `await start()`/`stop()` for tests, `await run()` for production."""

    def __init__(self, settings: ControlTowerSettings, clock: Clock = _utcnow):
        self.settings = settings
        self.model = ReadModel(settings)
        self.scraper = MetricsScraper(
            settings.scrape_targets(),
            every_s=settings.scrape_every_s,
            timeout_s=settings.scrape_timeout_s,
            max_points=settings.series_points,
            clock=clock,
        )
        api = ControlTowerApi(self.model, self.scraper, settings.exception_queue_limit, clock)
        self.http = Starlette(
            routes=[
                Route("/health/live", self._live),
                Route("/health/ready", self._ready),
                Route("/metrics", self._metrics),
                *api.routes(),
            ],
            exception_handlers={Problem: problem_handler},
        )
        self._stopping = asyncio.Event()
        self._feeds: asyncio.Task[None] | None = None

    async def _live(self, request: Request) -> Response:
        return json_response({"status": "live", "service": SERVICE})

    async def _ready(self, request: Request) -> Response:
        ok = self.model.caught_up
        body = {
            "status": "ready" if ok else "not_ready",
            "service": SERVICE,
            "records_read": self.model.records_read,
        }
        return json_response(body, 200 if ok else 503)

    async def _metrics(self, request: Request) -> Response:
        READY.labels(SERVICE).set(1 if self.model.caught_up else 0)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    async def start(self) -> None:
        await self.scraper.start()
        self._feeds = asyncio.create_task(self._start_feeds(), name="control-tower-feeds")

    async def _start_feeds(self) -> None:
        # Under `make up` the tower may come up before the topics are provisioned:
        # serve the page (showing "catching up") and keep trying.
        while True:
            try:
                await self.model.start()
                return
            except Exception as exc:
                await self.model.stop()
                log.warning("cannot follow the topics yet; retrying", error=repr(exc))
                await asyncio.sleep(2.0)

    async def stop(self) -> None:
        if self._feeds is not None:
            self._feeds.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feeds
        await self.scraper.stop()
        await self.model.stop()

    def request_stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Serve until SIGTERM/SIGINT."""
        configure_logging(SERVICE, self.settings.log_level, self.settings.log_json)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        config = uvicorn.Config(
            self.http,
            host=self.settings.http_host,
            port=self.settings.port_for(SERVICE),
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        server = uvicorn.Server(config)
        await self.start()
        # uvicorn traps SIGTERM/SIGINT itself while serving (and re-raises them after),
        # so the tower stops when either the server ends or our own handler fires.
        serve = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(self._stopping.wait())
        log.info("started", port=config.port, scrape_targets=self.settings.scrape_targets())
        await asyncio.wait([serve, stopping], return_when=asyncio.FIRST_COMPLETED)
        log.info("stopping")
        server.should_exit = True
        stopping.cancel()
        await serve
        await self.stop()
