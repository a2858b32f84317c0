"""Scrapes every service's Prometheus `/metrics` on a fixed cadence into `ServiceHistory`s."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
from handoff_events.runtime.logging import get_logger

from handoff_control_tower.domain.services import ServiceHistory, parse_scrape

log = get_logger("handoff.control_tower.scraper")
# httpx logs every request at INFO: one line per service every two seconds is noise.
logging.getLogger("httpx").setLevel(logging.WARNING)
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class MetricsScraper:
    def __init__(
        self,
        targets: dict[str, str],
        every_s: float,
        timeout_s: float,
        max_points: int,
        clock: Clock = _utcnow,
    ):
        self.every_s = every_s
        self.histories = {
            name: ServiceHistory(name=name, url=url, max_points=max_points)
            for name, url in targets.items()
        }
        self._timeout_s = timeout_s
        self._clock = clock
        self._client: httpx.AsyncClient | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self._timeout_s)
        self._task = asyncio.create_task(self._run(), name="control-tower-scraper")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._client is not None:
            await self._client.aclose()

    async def scrape_all(self) -> None:
        await asyncio.gather(*(self._scrape(h) for h in self.histories.values()))

    async def _scrape(self, history: ServiceHistory) -> None:
        assert self._client is not None
        try:
            response = await self._client.get(f"{history.url}/metrics")
            response.raise_for_status()
            scrape = parse_scrape(response.text)
        except (httpx.HTTPError, ValueError) as exc:
            # A stopped service is normal during `make up`: show it as down, keep going.
            history.failed(type(exc).__name__ + (f": {exc}" if str(exc) else ""), self._clock())
            return
        history.observe(scrape, self._clock())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.scrape_all()
            except Exception:  # never let one odd answer stop the dashboard
                log.exception("scrape round failed")
            await asyncio.sleep(max(0.05, self.every_s - (loop.time() - started)))
