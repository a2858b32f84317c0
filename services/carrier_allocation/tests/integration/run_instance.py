"""One allocation instance as its own OS process, for the kill test.

Usage: python run_instance.py <topic_prefix> <bootstrap> <config_dir> <state_dir> <instance_id>

Builds the app exactly as production does (from the data files in config_dir),
starts both stages (no HTTP server: several instances share the machine), prints
`ready` once every engine has its partitions restored, and runs until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from handoff_carrier_allocation.bootstrap import build_app
from handoff_carrier_allocation.settings import AllocationSettings
from handoff_events.runtime.logging import configure_logging


async def run(prefix: str, bootstrap: str, config_dir: str, state_dir: str, instance: str) -> None:
    settings = AllocationSettings(
        topic_prefix=prefix,
        kafka_bootstrap_servers=bootstrap,
        partitions=3,
        config_dir=Path(config_dir),
        state_dir=Path(state_dir),
        instance_id=instance,
        follow_kpis=False,
        http_tenders=False,
    )
    configure_logging(f"carrier_allocation-{instance}", "WARNING")  # stderr; stdout says `ready`
    app = build_app(settings, scorecards=dict)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await app.start()
    # readiness is a property of the engines, not an event to await
    while not app.ready and not stop.is_set():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    print("ready", flush=True)
    await stop.wait()
    await app.stop()


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:6]))
