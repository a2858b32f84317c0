"""`python -m handoff_tracking`: run the tracking service until SIGTERM.

`HANDOFF_TRACKING_STAGES=fold` runs the fold stage alone (crash tests, split deployments);
`HANDOFF_TRACKING_STAGES=ingress` runs the carrier webhook alone (the HTTP edge as its
own deployment).
"""

from __future__ import annotations

import os

from handoff_events.runtime.app import run_service

from handoff_tracking.bootstrap import build_app, build_fold_app, build_ingress_app
from handoff_tracking.settings import TrackingSettings


async def _run() -> None:
    # Built inside the loop: the Kafka clients bind to the running loop.
    settings = TrackingSettings()
    stages = os.environ.get("HANDOFF_TRACKING_STAGES", "all")
    if stages == "fold":
        app = build_fold_app(settings)
    elif stages == "ingress":
        app = build_ingress_app(settings)
    else:
        app = build_app(settings)
    await app.run()


def main() -> None:
    run_service(_run())


if __name__ == "__main__":
    main()
