"""SMS through a provider's HTTP API (httpx).

`POST {base_url}/v1/messages` with `{"to", "from", "text", "client_reference"}`
and a bearer key. The client reference is the notification id: providers that
deduplicate on it (most do) turn a re-send after a crash into a no-op.
Connection failures are retried once by the transport; any other retry is the
ledger's (a failed attempt is rescheduled, never slept on).
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from handoff_notifications.adapters.outcome import SendResult


@dataclass(frozen=True, slots=True)
class SmsConfig:
    base_url: str = "http://127.0.0.1:8092"
    api_key: str = "dev-sms-key"
    sender: str = "Handoff"
    timeout_s: float = 5.0


class SmsProvider:
    def __init__(self, config: SmsConfig):
        self.config = config
        self._client = httpx.AsyncClient(
            base_url=config.base_url,
            timeout=config.timeout_s,
            transport=httpx.AsyncHTTPTransport(retries=1),
            headers={"Authorization": f"Bearer {config.api_key}"},
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, to: str, text: str, notification_id: str) -> SendResult:
        payload = {
            "to": to,
            "from": self.config.sender,
            "text": text,
            "client_reference": notification_id,
        }
        try:
            response = await self._client.post("/v1/messages", json=payload)
        except httpx.HTTPError as exc:
            return SendResult.transient(f"{type(exc).__name__}: {exc}")
        if response.is_success:
            return SendResult.sent(f"HTTP {response.status_code}")
        detail = f"HTTP {response.status_code} {response.text[:200]}"
        if response.status_code in (408, 425, 429) or response.status_code >= 500:
            return SendResult.transient(detail)
        return SendResult.rejected(detail)
