"""`python -m handoff_tracking`: run the tracking service until SIGTERM.

`HANDOFF_TRACKING_STAGES=fold` runs the fold stage alone (crash tests, split deployments);
`HANDOFF_TRACKING_STAGES=ingress` runs the carrier webhook alone (the HTTP edge as its
own deployment).
"""

from __future__ import annotations

import argparse
import os

from handoff_events.runtime.app import run_service

from handoff_tracking.bootstrap import build_app, build_fold_app, build_ingress_app
from handoff_tracking.settings import TrackingSettings

EPILOG = """\
settings (environment):
  KAFKA_BOOTSTRAP_SERVERS        Kafka bootstrap servers (default 127.0.0.1:19092)
  HANDOFF_TRACKING_STAGES        all (default) | ingress (the carrier webhook only) |
                                 fold (the fold stage only)
  HANDOFF_API_KEYS               tenant:key,... for the queries (default: dev keys)
  HANDOFF_CARRIER_SECRETS        carrier:secret[|older],... for signed webhooks (default: dev)
  HANDOFF_STUCK_AFTER_HOURS      carrier silence that raises a `stuck` exception (default 48)
  HANDOFF_QUERY_RETENTION_DAYS   finished shipments unchanged this long leave the query
                                 replica (default: unset, every shipment is kept)
  HANDOFF_STORE_UNPACKED_MAX     shipment states the fold keeps decoded; the rest are
                                 packed, ~0.5 KB each (default 50000)
  HANDOFF_HTTP_PORT              HTTP port (default 8084)
  HANDOFF_TOPIC_PREFIX           prefix for topics, groups and transactional ids
See docs/operating.md for the rest (batches, compression, sizing).
"""


async def _run(stages: str) -> None:
    # Built inside the loop: the Kafka clients bind to the running loop.
    settings = TrackingSettings()
    if stages == "fold":
        app = build_fold_app(settings)
    elif stages == "ingress":
        app = build_ingress_app(settings)
    else:
        app = build_app(settings)
    await app.run()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="handoff-tracking",
        description="Tracking: the carrier webhook, the tracking-number join, the shipment "
        "fold, delivery KPIs and the shipment queries (Kafka + HTTP).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    run_service(_run(os.environ.get("HANDOFF_TRACKING_STAGES", "all")))


if __name__ == "__main__":
    main()
