"""Wires the tracking service: ingress (webhook + join), fold, KPIs, read models and queries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from handoff_events.runtime.app import ServiceApp
from handoff_events.runtime.http import TenantAuth, parse_api_keys

from handoff_tracking.adapters.read_model import ReadModels
from handoff_tracking.domain.exceptions import ExceptionPolicy
from handoff_tracking.entrypoints.http import ShipmentQueries
from handoff_tracking.handlers import build_fold, build_kpis
from handoff_tracking.ingress import build_ingress_parts
from handoff_tracking.openapi import openapi_document
from handoff_tracking.settings import TrackingSettings

SERVICE = "tracking"


def build_app(
    settings: TrackingSettings, clock: Callable[[], datetime] | None = None
) -> ServiceApp:
    ingress = build_ingress_parts(settings, clock)
    fold = build_fold(
        ExceptionPolicy(stuck_after=settings.stuck_after),
        settings.exception_check_every_s,
        remember=settings.store_unpacked_max,
    )
    kpis = build_kpis(settings.kpi_metrics_every_s)
    models = ReadModels(settings, settings.query_retention, clock)
    queries = ShipmentQueries(
        models, TenantAuth(parse_api_keys(settings.api_keys)), settings.query_page_limit
    )
    return ServiceApp(
        SERVICE,
        settings,
        processors=[ingress.join, fold, kpis],
        routes=[*queries.routes(), *ingress.routes],
        openapi=openapi_document(),
        on_start=[models.start, ingress.on_start],
        on_stop=[ingress.on_stop, models.stop],
        clock=clock,
        ready_checks={"query_replica": lambda: models.caught_up},
    )


def build_ingress_app(
    settings: TrackingSettings, clock: Callable[[], datetime] | None = None
) -> ServiceApp:
    """Only the carrier webhook (no stages, no queries): the HTTP edge as its own
    deployment, scaled on request load, with the join, fold and queries elsewhere
    (a second deployment with `HANDOFF_TRACKING_STAGES=all` and no webhook traffic)."""
    ingress = build_ingress_parts(settings, clock)
    return ServiceApp(
        SERVICE,
        settings,
        processors=[],
        routes=list(ingress.routes),
        openapi=openapi_document(),
        on_start=[ingress.on_start],
        on_stop=[ingress.on_stop],
        clock=clock,
    )


def build_fold_app(settings: TrackingSettings) -> ServiceApp:
    """Only the fold stage (no HTTP routes, no ingress): for focused runs and crash tests."""
    fold = build_fold(
        ExceptionPolicy(stuck_after=settings.stuck_after),
        settings.exception_check_every_s,
        remember=settings.store_unpacked_max,
    )
    return ServiceApp(SERVICE, settings, processors=[fold])
