"""Marketplace webhooks: signed HTTP POSTs of the update, with endpoint health.

Each attempt signs `<timestamp>.<body>` afresh (the receiver checks the
timestamp window); the body and the `Idempotency-Key` are the same on every
attempt. An endpoint that fails N times in a row, whichever shipments the
calls were for, is paused for a cool-down instead of being hammered; while it
is failing only one probe at a time is let through.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import httpx

from handoff_notifications.adapters.outcome import SendResult
from handoff_notifications.domain.signing import signed_headers


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    tenant: str
    url: str
    key_id: str
    secret: bytes


@dataclass
class EndpointHealth:
    tenant: str
    url: str
    consecutive_failures: int = 0
    paused_until: datetime | None = None
    pauses: int = 0
    last_error: str | None = None
    last_success_at: datetime | None = None
    in_flight: int = 0


@dataclass
class EndpointHealthBook:
    """In-memory, per instance: health is a property of the endpoint, not of a shipment."""

    threshold: int = 5
    cooldown: timedelta = timedelta(minutes=5)
    endpoints: dict[str, EndpointHealth] = field(default_factory=dict)

    def of(self, endpoint: WebhookEndpoint) -> EndpointHealth:
        health = self.endpoints.get(endpoint.tenant)
        if health is None:
            health = self.endpoints[endpoint.tenant] = EndpointHealth(endpoint.tenant, endpoint.url)
        return health

    def paused(self, endpoint: WebhookEndpoint, now: datetime) -> bool:
        health = self.of(endpoint)
        return health.paused_until is not None and now < health.paused_until

    def may_send(self, endpoint: WebhookEndpoint, now: datetime) -> bool:
        """Healthy: go. Failing: one probe at a time. Paused: wait for the cool-down."""
        health = self.of(endpoint)
        if self.paused(endpoint, now):
            return False
        return health.consecutive_failures == 0 or health.in_flight == 0

    def success(self, endpoint: WebhookEndpoint, now: datetime) -> None:
        health = self.of(endpoint)
        health.consecutive_failures = 0
        health.paused_until = None
        health.last_success_at = now

    def failure(self, endpoint: WebhookEndpoint, now: datetime, error: str) -> bool:
        """Count a failure; True when this one paused the endpoint."""
        health = self.of(endpoint)
        health.consecutive_failures += 1
        health.last_error = error[:200]
        if health.consecutive_failures >= self.threshold and not self.paused(endpoint, now):
            health.paused_until = now + self.cooldown
            health.pauses += 1
            # after the cool-down one probe decides: success resets, failure re-pauses
            health.consecutive_failures = self.threshold - 1
            return True
        return False


class WebhookSender:
    def __init__(self, timeout_s: float = 5.0, instance: str = ""):
        self._client = httpx.AsyncClient(timeout=timeout_s, follow_redirects=False)
        self._instance = instance

    async def close(self) -> None:
        await self._client.aclose()

    async def send(
        self, endpoint: WebhookEndpoint, body: bytes, notification_id: str, timestamp: int
    ) -> SendResult:
        headers = signed_headers(endpoint.secret, endpoint.key_id, timestamp, body, notification_id)
        headers["Content-Type"] = "application/cloudevents+json"
        if self._instance:
            headers["X-Handoff-Sender-Instance"] = self._instance
        try:
            response = await self._client.post(endpoint.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return SendResult.transient(f"{type(exc).__name__}: {exc}")
        if response.is_success:
            return SendResult.sent(f"HTTP {response.status_code}")
        # a marketplace endpoint's 4xx is usually a deploy or config slip on their side that
        # gets fixed: keep retrying within the horizon rather than dropping the milestone
        return SendResult.transient(f"HTTP {response.status_code} {response.text[:200]}")
