"""The notifications service's settings (environment: `HANDOFF_*`).

Marketplace webhook endpoints come from `HANDOFF_WEBHOOKS` as JSON, e.g.
`{"acme": {"url": "https://hooks.acme.example/handoff", "key_id": "acme-2026-11",
"secret": "…"}}`; the defaults point every tenant at the local webhook receiver
(`python -m handoff_sim.webhook_receiver`) with development secrets.
"""

from __future__ import annotations

from pathlib import Path

from handoff_events.runtime.settings import ServiceSettings
from pydantic import BaseModel, SecretStr


class WebhookEndpointSettings(BaseModel):
    url: str
    key_id: str
    secret: SecretStr


def _dev_webhooks() -> dict[str, WebhookEndpointSettings]:
    return {
        tenant: WebhookEndpointSettings(
            url=f"http://127.0.0.1:8091/hooks/{tenant}",
            key_id=f"{tenant}-dev-1",
            secret=SecretStr(f"dev-webhook-secret-{tenant}"),
        )
        for tenant in ("acme", "globex")
    }


class NotificationSettings(ServiceSettings):
    rules_file: Path | None = None
    """Default: `<config_dir>/notifications/rules.toml`."""
    time_zones_file: Path | None = None
    """Default: `<config_dir>/notifications/time_zones.toml`."""
    templates_dir: Path | None = None
    """Default: `<config_dir>/notifications/templates`."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_starttls: bool = False
    smtp_implicit_tls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_s: float = 10.0
    message_id_domain: str = "notifications.handoff.dev"

    sms_provider_url: str = "http://127.0.0.1:8092"
    sms_api_key: SecretStr = SecretStr("dev-sms-key")
    sms_sender: str = "Handoff"
    sms_timeout_s: float = 5.0

    webhooks: dict[str, WebhookEndpointSettings] = _dev_webhooks()
    webhook_timeout_s: float = 5.0
    endpoint_failure_threshold: int = 5
    """Consecutive failures (across shipments) that pause a marketplace endpoint."""
    endpoint_cooldown_s: float = 300.0

    retry_base_s: float = 30.0
    retry_cap_s: float = 3600.0
    retry_horizon_s: float = 24 * 3600.0
    dispatch_every_s: float = 0.25
    """How often each partition's ledger is scanned for due deliveries and results recorded."""
    max_in_flight: int = 64
    """Sends in progress at once, across partitions."""

    recipient_pepper: SecretStr = SecretStr("dev-recipient-pepper")
    """Key of the recipient hash in outcome events; rotate and every recipient_ref changes."""
    ledger_retention_days: float = 30.0
    """A finished shipment's ledger (and the contact in it) is deleted after this much quiet."""

    def notifications_dir(self) -> Path:
        return self.config_dir / "notifications"
