"""`python -m handoff_carrier_allocation`: run the carrier allocation service."""

from __future__ import annotations

import argparse

from handoff_events.runtime.app import run_service

from handoff_carrier_allocation.bootstrap import build_app
from handoff_carrier_allocation.settings import AllocationSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="handoff-carrier-allocation",
        description="Handoff carrier allocation: ranks quotes by tenant policy, reserves carrier "
        "capacity, tenders and re-tenders. Configured by HANDOFF_* environment variables "
        "(e.g. HANDOFF_TENDER_TIMEOUT_S, HANDOFF_CONFIG_DIR, KAFKA_BOOTSTRAP_SERVERS) and the "
        "data files under <config_dir>/allocation/ (policies.toml, capacity.toml, tendering.toml).",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="load and validate the data files, print a summary and exit",
    )
    args = parser.parse_args(argv)
    settings = AllocationSettings()
    if args.check_config:
        from handoff_carrier_allocation.bootstrap import load_config

        cfg = load_config(settings)
        print(
            f"policies: {sorted(cfg.policies.policies)}; capacity carriers: "
            f"{sorted(cfg.capacity.carrier_limits)}; http tender carriers: "
            f"{sorted(cfg.tendering.http)}"
        )
        return
    run_service(_serve(settings))


async def _serve(settings: AllocationSettings) -> None:
    # built inside the running loop: aiokafka clients bind to it when constructed
    await build_app(settings).run()


if __name__ == "__main__":
    main()
