"""Wiring: the catalogue, the transit history and its feed, price sources, the stage, the HTTP edge.

`build_app(settings)` wires the real adapters; tests pass their own `pricing`
(e.g. an HTTP carrier pointed at a local server) or a pre-filled history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import httpx
from handoff_events.runtime.app import ServiceApp
from handoff_events.runtime.http import TenantAuth, parse_api_keys

from handoff_rate_shopping.adapters.carriers import CarrierPricing, HttpQuoteAdapter
from handoff_rate_shopping.adapters.catalogue_files import load_catalogue
from handoff_rate_shopping.adapters.history_feed import HistoryFeed
from handoff_rate_shopping.domain.catalogue import Catalogue
from handoff_rate_shopping.domain.transit_history import TransitHistory
from handoff_rate_shopping.entrypoints import http
from handoff_rate_shopping.handlers import quotes_processor
from handoff_rate_shopping.openapi import openapi_document
from handoff_rate_shopping.quoting import Quoter
from handoff_rate_shopping.settings import RateShoppingSettings


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_app(
    settings: RateShoppingSettings,
    *,
    catalogue: Catalogue | None = None,
    history: TransitHistory | None = None,
    pricing: Mapping[str, CarrierPricing] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> ServiceApp:
    catalogue = catalogue or load_catalogue(settings.catalogue_dir)
    history = history or TransitHistory(
        settings.history_max_per_lane, settings.history_min_observations
    )
    client = httpx.AsyncClient()
    sources: dict[str, CarrierPricing] = {
        c.code: HttpQuoteAdapter(c, client) for c in catalogue.carriers if c.quote_api is not None
    }
    sources.update(pricing or {})
    quoter = Quoter(catalogue, history, sources)
    now = clock or _utcnow
    on_start = []
    on_stop = []
    if settings.follow_history:
        feed = HistoryFeed(settings, history, settings.history_catch_up_timeout_s)
        on_start.append(feed.start)
        on_stop.append(feed.stop)
    on_stop.append(client.aclose)
    app = ServiceApp(
        "rate_shopping",
        settings,
        processors=[quotes_processor(quoter)],
        routes=http.routes(quoter, TenantAuth(parse_api_keys(settings.api_keys)), now),
        openapi=openapi_document(),
        on_start=on_start,
        on_stop=on_stop,
        clock=clock,
    )
    app.http.state.quoter = quoter
    return app
