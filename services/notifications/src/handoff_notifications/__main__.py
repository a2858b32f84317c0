"""`python -m handoff_notifications`: run the notifications service until SIGTERM."""

from __future__ import annotations

import argparse

from handoff_events.runtime.app import run_service

from handoff_notifications.bootstrap import build_app
from handoff_notifications.settings import NotificationSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="handoff-notifications",
        description=(
            "Handoff notifications: customer e-mail/SMS and signed marketplace webhooks from "
            "shipment updates. Configured by HANDOFF_* environment variables (see "
            "docs/notifications.md), e.g. HANDOFF_SMTP_HOST, HANDOFF_SMTP_PORT, "
            "HANDOFF_SMS_PROVIDER_URL, HANDOFF_WEBHOOKS (JSON), HANDOFF_RETRY_HORIZON_S, "
            "KAFKA_BOOTSTRAP_SERVERS."
        ),
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="load rules and templates, report errors, and exit",
    )
    args = parser.parse_args(argv)
    settings = NotificationSettings()
    if args.check_config:
        from handoff_notifications.bootstrap import build_notifier

        notifier = build_notifier(settings)
        tenants = sorted(notifier.planner.rules.tenants)
        print(f"rules ok: tenants {', '.join(tenants)}; templates {notifier.renderer.directory}")
        return
    run_service(_serve(settings))


async def _serve(settings: NotificationSettings) -> None:
    # built inside the loop: the Kafka clients bind to the running loop when created
    await build_app(settings).run()


if __name__ == "__main__":
    main()
