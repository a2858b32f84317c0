"""`python -m handoff_control_tower`: run the control tower until SIGTERM."""

from __future__ import annotations

from handoff_events.runtime.app import run_service

from handoff_control_tower.bootstrap import ControlTower
from handoff_control_tower.settings import ControlTowerSettings


async def _run() -> None:
    # Built inside the loop: the Kafka clients bind to the running loop.
    await ControlTower(ControlTowerSettings()).run()


def main() -> None:
    run_service(_run())


if __name__ == "__main__":
    main()
