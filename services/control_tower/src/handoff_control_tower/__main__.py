"""`python -m handoff_control_tower`: run the control tower until SIGTERM."""

from __future__ import annotations

import argparse

from handoff_events.runtime.app import run_service

from handoff_control_tower.bootstrap import ControlTower
from handoff_control_tower.settings import ControlTowerSettings

EPILOG = """\
settings (environment):
  KAFKA_BOOTSTRAP_SERVERS   Kafka bootstrap servers (default 127.0.0.1:19092)
  HANDOFF_SERVICE_URLS      name=http://host:port,... whose /metrics to scrape
                            (default: every service on its local default port)
  HANDOFF_HTTP_PORT         HTTP port of the page (default 8080)
  HANDOFF_TOPIC_PREFIX      prefix for topics, groups and transactional ids
See docs/control-tower.md.
"""


async def _run() -> None:
    # Built inside the loop: the Kafka clients bind to the running loop.
    await ControlTower(ControlTowerSettings()).run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="handoff-control-tower",
        description="The control tower: a live page of shipments, exceptions, carriers and "
        "the services' throughput and lag, read from the topics and /metrics.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    run_service(_run())


if __name__ == "__main__":
    main()
