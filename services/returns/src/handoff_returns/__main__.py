"""`python -m handoff_returns`: run the returns service until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from handoff_events.runtime.app import run_service

from handoff_returns.bootstrap import build_app
from handoff_returns.settings import ReturnsSettings

DESCRIPTION = """Handoff returns service: authorises return requests by tenant policy, emits the
reverse shipment, reports return received / refund eligible / expired.

Configuration comes from the environment:
  KAFKA_BOOTSTRAP_SERVERS           Kafka bootstrap servers (default 127.0.0.1:19092)
  HANDOFF_TOPIC_PREFIX              prefix for topics, groups, transactional ids
  HANDOFF_PARTITIONS                partition count of the catalogue topics
  HANDOFF_API_KEYS                  tenant:key,... for POST /v1/returns
  HANDOFF_CONFIG_DIR                data files (default deploy/config)
  HANDOFF_POLICIES_FILE             tenant return policies (default <config>/returns/policies.toml)
  HANDOFF_LOCATIONS_FILE            location catalogue (default <config>/locations.toml)
  HANDOFF_EXPIRY_CHECK_INTERVAL_S   how often unused labels are checked for expiry
  HANDOFF_HTTP_HOST / HANDOFF_HTTP_PORT   HTTP listen address (default port 8086)
"""


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="handoff-returns",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="load and validate the policy and location files, then exit",
    )
    args = parser.parse_args(argv)
    settings = ReturnsSettings()
    if args.check_config:
        from handoff_returns.adapters.policy_file import load_config

        config = load_config(settings.policies_path(), settings.locations_path())
        print(f"ok: {len(config.policies)} tenant policies, {len(config.centres)} return centres")
        return
    run_service(_serve(settings))


async def _serve(settings: ReturnsSettings) -> None:
    # Built inside the running loop: the app's Kafka clients bind to the loop at creation.
    await build_app(settings).run()


if __name__ == "__main__":
    main()
