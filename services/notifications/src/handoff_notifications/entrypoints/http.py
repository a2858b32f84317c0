"""HTTP routes: `GET /v1/webhooks/status`, the health of each marketplace endpoint.

Operators use it to see which endpoints are failing or paused (and why)
without reading logs; secrets are never shown.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime

from handoff_events.runtime.http import json_response
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from handoff_notifications.adapters.webhook import EndpointHealthBook, WebhookEndpoint


def endpoint_status(
    endpoints: Mapping[str, WebhookEndpoint], health: EndpointHealthBook, now: datetime
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for tenant, endpoint in sorted(endpoints.items()):
        h = health.of(endpoint)
        paused = health.paused(endpoint, now)
        state = "paused" if paused else ("failing" if h.consecutive_failures else "healthy")
        out.append(
            {
                "tenant": tenant,
                "url": endpoint.url,
                "key_id": endpoint.key_id,
                "state": state,
                "consecutive_failures": h.consecutive_failures,
                "paused_until": h.paused_until.isoformat() if paused and h.paused_until else None,
                "pauses": h.pauses,
                "last_error": h.last_error,
                "last_success_at": h.last_success_at.isoformat() if h.last_success_at else None,
                "in_flight": h.in_flight,
            }
        )
    return out


def routes(
    endpoints: Mapping[str, WebhookEndpoint],
    health: EndpointHealthBook,
    clock: Callable[[], datetime],
) -> list[BaseRoute]:
    async def webhooks_status(request: Request) -> Response:
        return json_response({"endpoints": endpoint_status(endpoints, health, clock())})

    return [Route("/v1/webhooks/status", webhooks_status, methods=["GET"])]


OPENAPI: dict[str, object] = {
    "openapi": "3.1.0",
    "info": {"title": "Handoff notifications", "version": "1.0.0"},
    "paths": {
        "/v1/webhooks/status": {
            "get": {
                "summary": "Health of every marketplace webhook endpoint",
                "responses": {
                    "200": {
                        "description": "One entry per tenant endpoint",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "endpoints": {
                                            "type": "array",
                                            "items": {
                                                "type": "object",
                                                "properties": {
                                                    "tenant": {"type": "string"},
                                                    "url": {"type": "string"},
                                                    "key_id": {"type": "string"},
                                                    "state": {
                                                        "enum": ["healthy", "failing", "paused"]
                                                    },
                                                    "consecutive_failures": {"type": "integer"},
                                                    "paused_until": {
                                                        "type": ["string", "null"],
                                                        "format": "date-time",
                                                    },
                                                    "pauses": {"type": "integer"},
                                                    "last_error": {"type": ["string", "null"]},
                                                },
                                            },
                                        }
                                    },
                                }
                            }
                        },
                    }
                },
            }
        }
    },
}
