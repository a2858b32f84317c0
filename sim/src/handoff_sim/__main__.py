"""`python -m handoff_sim` / `handoff-sim`: run the simulated marketplaces or carriers.

    handoff-sim marketplace --orders-per-second 2 --duration 60 --seed 7
    handoff-sim carriers --time-scale 3600 --seed 7
    handoff-sim orders --seed 7 -n 5          print generated orders (JSON lines), no Kafka
    handoff-sim up …                          the whole world (same as python -m handoff_sim.up)

Kafka settings come from the environment like the services' (KAFKA_BOOTSTRAP_SERVERS,
HANDOFF_TOPIC_PREFIX). SIGTERM or Ctrl-C stops a runner cleanly; `--stats FILE` writes
its counters there on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import msgspec
from handoff_events.runtime.logging import configure_logging
from handoff_events.runtime.settings import ServiceSettings

from handoff_sim.carriers import CarrierSimConfig, CarrierSimulator, secrets_from_environment
from handoff_sim.marketplace import MarketplaceConfig, MarketplaceRunner, generate_orders

Runner = MarketplaceRunner | CarrierSimulator


def _plain(stats: Any) -> dict[str, Any]:
    # Not dataclasses.asdict: it rebuilds a Counter from (key, count) pairs, counting the pairs.
    return {
        name: dict(value) if isinstance(value, dict) else value
        for name, value in vars(stats).items()
    }


def _write_stats(path: Path | None, stats: Any) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = _plain(stats)
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n")


async def _until_signalled(build: Callable[[], Runner]) -> Any:
    # Built inside the loop: the Kafka clients bind to the running loop when created.
    runner = build()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await runner.run(stop)


def _marketplace(args: argparse.Namespace) -> int:
    settings = ServiceSettings()
    configure_logging("sim-marketplace", settings.log_level, settings.log_json)
    config = MarketplaceConfig(
        seed=args.seed,
        orders_per_second=args.orders_per_second,
        duration_s=args.duration,
        day_length_s=args.day_length,
        start_hour=args.start_hour,
        order_intake_url=args.order_intake_url,
        returns_url=args.returns_url,
        oracle_path=args.oracle,
        returns=not args.no_returns,
        linger_s=args.linger,
        config_dir=settings.config_dir,
    )
    stats = asyncio.run(_until_signalled(lambda: MarketplaceRunner(settings, config)))
    _write_stats(args.stats, stats)
    print(json.dumps(_plain(stats), sort_keys=True), flush=True)
    return 0


def _carriers(args: argparse.Namespace) -> int:
    settings = ServiceSettings()
    configure_logging("sim-carriers", settings.log_level, settings.log_json)
    config = CarrierSimConfig(
        seed=args.seed,
        time_scale=args.time_scale,
        tracking_url=args.tracking_url,
        carrier_secrets=secrets_from_environment(),
        config_dir=settings.config_dir,
    )
    stats = asyncio.run(_until_signalled(lambda: CarrierSimulator(settings, config)))
    _write_stats(args.stats, stats)
    print(json.dumps(_plain(stats), sort_keys=True), flush=True)
    return 0


def _orders(args: argparse.Namespace) -> int:
    for planned in generate_orders(args.seed, args.n):
        line = {
            "seq": planned.seq,
            "offset_s": round(planned.offset_s, 3),
            "tenant": planned.tenant_id,
            "channel": planned.channel,
            "defect": planned.defect,
            "cancel": planned.cancel is not None,
            "order": msgspec.json.decode(planned.body),
        }
        sys.stdout.write(json.dumps(line, ensure_ascii=False) + "\n")
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="handoff-sim",
        description="Simulated marketplaces and carriers for Handoff (demos, tests, benchmarks).",
    )
    sub = top.add_subparsers(dest="command", required=True)

    market = sub.add_parser("marketplace", help="place orders, cancellations and returns")
    market.add_argument("--seed", type=int, default=1)
    market.add_argument("--orders-per-second", type=float, default=2.0, metavar="R",
                        help="mean rate over a simulated day (the evening peak is higher)")  # fmt: skip
    market.add_argument("--duration", type=float, default=None, metavar="S",
                        help="seconds of orders (default: until stopped)")  # fmt: skip
    market.add_argument("--day-length", type=float, default=600.0, metavar="S",
                        help="real seconds per simulated day of the demand curve")  # fmt: skip
    market.add_argument("--start-hour", type=float, default=17.0,
                        help="simulated hour of day at the start (default 17: the evening peak "
                        "comes soon)")  # fmt: skip
    market.add_argument("--order-intake-url", default="http://127.0.0.1:8081")
    market.add_argument("--returns-url", default="http://127.0.0.1:8086")
    market.add_argument("--oracle", type=Path, default=Path(".run/oracle/marketplace.jsonl"),
                        help="JSONL record of every input sent")  # fmt: skip
    market.add_argument("--no-returns", action="store_true", help="never request returns")
    market.add_argument("--linger", type=float, default=0.0, metavar="S",
                        help="after the last order, keep requesting returns this long")  # fmt: skip
    market.add_argument("--stats", type=Path, default=None, help="write counters here on exit")
    market.set_defaults(func=_marketplace)

    carriers = sub.add_parser("carriers", help="scan allocated parcels in each carrier's codes")
    carriers.add_argument("--seed", type=int, default=1)
    carriers.add_argument("--time-scale", type=float, default=3600.0, metavar="X",
                          help="simulated seconds per real second (3600: an hour per second)")  # fmt: skip
    carriers.add_argument("--tracking-url", default="http://127.0.0.1:8084",
                          help="the tracking service, for carriers that post webhooks")  # fmt: skip
    carriers.add_argument("--stats", type=Path, default=None, help="write counters here on exit")
    carriers.set_defaults(func=_carriers)

    orders = sub.add_parser("orders", help="print generated orders (no Kafka, no HTTP)")
    orders.add_argument("--seed", type=int, default=1)
    orders.add_argument("-n", type=int, default=10)
    orders.set_defaults(func=_orders)

    up = sub.add_parser("up", help="the whole world: see `python -m handoff_sim.up --help`",
                        add_help=False)  # fmt: skip
    up.add_argument("rest", nargs=argparse.REMAINDER)
    up.set_defaults(func=None)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.command == "up":
        from handoff_sim import up

        return up.main(args.rest)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
