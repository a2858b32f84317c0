"""`handoff-order-intake`: run the order intake service until SIGTERM."""

from __future__ import annotations

import argparse

from handoff_events.runtime.app import run_service

from handoff_order_intake.adapters.location_file import load_locations
from handoff_order_intake.bootstrap import build_app
from handoff_order_intake.settings import OrderIntakeSettings

EPILOG = """\
settings (environment):
  KAFKA_BOOTSTRAP_SERVERS   Kafka bootstrap servers (default 127.0.0.1:19092)
  HANDOFF_API_KEYS          tenant:key,... (default: dev keys acme:acme-key,globex:globex-key)
  HANDOFF_CONFIG_DIR        data files directory (default deploy/config)
  HANDOFF_LOCATIONS_FILE    location catalogue (default <config dir>/locations.toml)
  HANDOFF_HTTP_PORT         HTTP port (default 8081)
  HANDOFF_TOPIC_PREFIX      prefix for topics, groups and transactional ids
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="handoff-order-intake",
        description="Order intake: validates, normalises and splits marketplace orders into "
        "shipments, and decides cancellations (Kafka + HTTP).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="load and validate the location catalogue, then exit",
    )
    args = parser.parse_args(argv)
    settings = OrderIntakeSettings()
    if args.check_config:
        catalogue = load_locations(settings.locations_path())
        print(f"{settings.locations_path()}: {len(catalogue)} locations OK")
        return
    run_service(build_app(settings).run())


if __name__ == "__main__":
    main()
