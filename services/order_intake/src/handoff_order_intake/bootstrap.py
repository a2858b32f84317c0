"""Wiring: the location catalogue, both stream stages, the HTTP routes and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from handoff_events.runtime.app import ServiceApp
from handoff_events.runtime.http import TenantAuth, parse_api_keys

from handoff_order_intake.adapters.location_file import load_locations
from handoff_order_intake.domain.locations import LocationCatalogue
from handoff_order_intake.entrypoints.http import order_routes
from handoff_order_intake.handlers import SERVICE, cancellation_processor, order_processor
from handoff_order_intake.openapi import openapi_document
from handoff_order_intake.settings import OrderIntakeSettings


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_app(
    settings: OrderIntakeSettings,
    *,
    clock: Callable[[], datetime] | None = None,
    catalogue: LocationCatalogue | None = None,
) -> ServiceApp:
    """The order intake service. Fails fast (naming file, entry, field) on a bad location file."""
    locations = catalogue if catalogue is not None else load_locations(settings.locations_path())
    auth = TenantAuth(parse_api_keys(settings.api_keys))
    return ServiceApp(
        SERVICE,
        settings,
        processors=[order_processor(locations), cancellation_processor()],
        routes=order_routes(auth, clock or _utcnow, settings.topic_prefix),
        openapi=openapi_document(),
        clock=clock,
    )
