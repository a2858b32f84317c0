"""Wiring: settings → rules, templates, channel adapters, the dispatch stage, HTTP routes."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from handoff_events.runtime.app import ServiceApp

from handoff_notifications.adapters.config_files import load_rules
from handoff_notifications.adapters.email import SmtpConfig, SmtpMailer
from handoff_notifications.adapters.sms import SmsConfig, SmsProvider
from handoff_notifications.adapters.templates import TemplateRenderer
from handoff_notifications.adapters.webhook import (
    EndpointHealthBook,
    WebhookEndpoint,
    WebhookSender,
)
from handoff_notifications.domain.backoff import RetryPolicy
from handoff_notifications.domain.ledger import Planner
from handoff_notifications.entrypoints.http import OPENAPI, routes
from handoff_notifications.handlers import SERVICE, Channels, Notifier
from handoff_notifications.settings import NotificationSettings


def _utcnow() -> datetime:
    return datetime.now(UTC)


def build_notifier(
    settings: NotificationSettings, clock: Callable[[], datetime] | None = None
) -> Notifier:
    base = settings.notifications_dir()
    rules = load_rules(
        settings.rules_file or base / "rules.toml",
        settings.time_zones_file or base / "time_zones.toml",
    )
    # the same default as ServiceApp's: host and pid tell process incarnations apart
    instance = settings.instance_id or f"{socket.gethostname()}-{os.getpid()}"
    endpoints = {
        tenant: WebhookEndpoint(
            tenant=tenant,
            url=hook.url,
            key_id=hook.key_id,
            secret=hook.secret.get_secret_value().encode(),
        )
        for tenant, hook in settings.webhooks.items()
    }
    channels = Channels(
        mailer=SmtpMailer(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                starttls=settings.smtp_starttls,
                implicit_tls=settings.smtp_implicit_tls,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value()
                if settings.smtp_password
                else None,
                timeout_s=settings.smtp_timeout_s,
                message_id_domain=settings.message_id_domain,
                sender_instance=instance,
            )
        ),
        sms=SmsProvider(
            SmsConfig(
                base_url=settings.sms_provider_url,
                api_key=settings.sms_api_key.get_secret_value(),
                sender=settings.sms_sender,
                timeout_s=settings.sms_timeout_s,
            )
        ),
        webhooks=WebhookSender(timeout_s=settings.webhook_timeout_s, instance=instance),
        endpoints=endpoints,
    )
    return Notifier(
        planner=Planner(
            rules=rules,
            pepper=settings.recipient_pepper.get_secret_value().encode(),
            webhook_tenants=frozenset(endpoints),
        ),
        renderer=TemplateRenderer(settings.templates_dir or base / "templates"),
        channels=channels,
        policy=RetryPolicy(
            base_s=settings.retry_base_s,
            cap_s=settings.retry_cap_s,
            horizon_s=settings.retry_horizon_s,
        ),
        health=EndpointHealthBook(
            threshold=settings.endpoint_failure_threshold,
            cooldown=timedelta(seconds=settings.endpoint_cooldown_s),
        ),
        retention=timedelta(days=settings.ledger_retention_days),
        max_in_flight=settings.max_in_flight,
        clock=clock or _utcnow,
    )


def build_app(
    settings: NotificationSettings, clock: Callable[[], datetime] | None = None
) -> ServiceApp:
    notifier = build_notifier(settings, clock)
    app = ServiceApp(
        SERVICE,
        settings,
        processors=[notifier.processor(settings.dispatch_every_s)],
        routes=routes(notifier.channels.endpoints, notifier.health, notifier.clock),
        openapi=OPENAPI,
        on_stop=[notifier.close],
        clock=clock,
    )
    app.http.state.notifier = notifier
    return app
