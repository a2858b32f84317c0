"""`python -m handoff_rate_shopping` / `handoff-rate-shopping`: run the rate shopping service."""

from __future__ import annotations

import argparse

from handoff_events.runtime.app import run_service

from handoff_rate_shopping.bootstrap import build_app
from handoff_rate_shopping.settings import RateShoppingSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="handoff-rate-shopping",
        description="Quote every eligible carrier for each requested shipment "
        "(reads handoff.order_intake.shipments.v1 and handoff.returns.shipments.v1, "
        "writes handoff.rate_shopping.quotes.v1; serves POST /v1/quotes).",
        epilog="Configuration comes from the environment: KAFKA_BOOTSTRAP_SERVERS, "
        "HANDOFF_TOPIC_PREFIX, HANDOFF_CONFIG_DIR (carrier catalogue in <dir>/carriers), "
        "HANDOFF_CARRIERS_DIR, HANDOFF_API_KEYS, HANDOFF_HISTORY_MIN_OBSERVATIONS, "
        "HANDOFF_HTTP_PORT.",
    )
    parser.add_argument(
        "--check-catalogue",
        action="store_true",
        help="load and validate the carrier catalogue, print a summary and exit",
    )
    args = parser.parse_args(argv)
    settings = RateShoppingSettings()
    if args.check_catalogue:
        from handoff_rate_shopping.adapters.catalogue_files import load_catalogue

        catalogue = load_catalogue(settings.catalogue_dir)
        for carrier in catalogue.carriers:
            services = ", ".join(f"{s.code} ({s.service_level})" for s in carrier.services)
            print(f"{carrier.code}: {services}; hubs {', '.join(h.hub_id for h in carrier.hubs)}")
        return
    run_service(_serve(settings))


async def _serve(settings: RateShoppingSettings) -> None:
    # Built inside the running loop: ServiceApp creates aiokafka clients, which need one.
    await build_app(settings).run()


if __name__ == "__main__":
    main()
