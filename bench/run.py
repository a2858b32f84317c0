"""`make bench` / `make bench-quick`: start a broker of our own, run every scenario, print
one table and write it (JSON + Markdown, with the machine's facts) to
bench/results/<timestamp>/.

    python -m bench.run --mode quick            # < 5 min, proves the harness end to end
    python -m bench.run --mode full --profile   # < 30 min, py-spy on the stream workers
    python -m bench.run --only fold,peer        # a subset

A scenario that cannot run (a service that does not start, a missing tool) yields
rows marked "n/a (<reason>)"; it never stops the others.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import (
    REPO,
    RUN_DIR,
    BenchBroker,
    Row,
    Worker,
    load_average,
    machine_facts,
    say,
    stop_workers,
    write_json,
)
from bench.scenarios import ceiling, fold, peer, pipeline, rating, restore, scaling, webhook
from bench.sizes import FULL, QUICK, Sizes

Scenario = Callable[["Bench"], Awaitable[list[Row]]]
SCENARIOS: dict[str, tuple[Scenario, str]] = {
    "ceiling": (ceiling.run, "ceiling"),
    "fold": (fold.run, "tracking fold"),
    "peer": (peer.run, "Quix Streams peer"),
    "pipeline": (pipeline.run, "order pipeline"),
    "webhook": (webhook.run, "webhook ingress"),
    "restore": (restore.run, "restore"),
    "scaling": (scaling.run, "scaling"),
    "rating": (rating.run, "rate shopping"),
}


@dataclass
class Bench:
    """What scenarios share: the broker, sizes, directories, earlier results."""

    broker: BenchBroker
    mode: str
    sizes: Sizes
    out: Path
    profile: bool
    stamp: str = field(default_factory=lambda: str(int(time.time())))
    results: dict[str, Any] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    @property
    def logs(self) -> Path:
        return self.out / "logs"

    @property
    def work(self) -> Path:
        """Scratch files of this run's processes (state directories, config files): one per
        broker port, so two runs on different ports never wipe each other's."""
        path = RUN_DIR / f"work-{self.broker.node.client_port}"
        path.mkdir(parents=True, exist_ok=True)
        return path


def table(rows: list[Row]) -> str:
    header = ("scenario", "metric", "value", "unit", "target", "", "note")
    lines = [
        (r.scenario, r.metric, r.shown_value(), r.unit, r.target or "", r.mark(), r.note)
        for r in rows
    ]
    widths = [max(len(str(x[i])) for x in [header, *lines]) for i in range(6)]

    def fmt(cells: tuple[str, ...]) -> str:
        first = [str(c).ljust(widths[i]) if i != 2 else str(c).rjust(widths[i])
                 for i, c in enumerate(cells[:6])]  # fmt: skip
        return "  ".join(first) + "  " + cells[6]

    rule = "  ".join("-" * w for w in widths) + "  ----"
    return "\n".join([fmt(header), rule, *(fmt(line) for line in lines)])


def markdown(rows: list[Row], meta: dict[str, Any]) -> str:
    facts = meta["machine"]
    out = [
        f"# Handoff benchmark, {meta['mode']} mode, {meta['started']}",
        "",
        f"{facts['cores']} cores ({facts['cpu_model']}), {facts['memory_mb']:,} MB RAM, "
        f"Python {facts['python']}, aiokafka {facts['aiokafka']}, Kafka {facts['kafka']}, "
        f"Quix Streams {facts['quixstreams']}; "
        f"{facts.get('partitions', 12)} partitions per topic.",
        f"Load average at start {meta['load_start']}, at end {meta['load_end']}; "
        f"took {meta['seconds']:.0f} s.",
        "",
        "| scenario | metric | value | unit | target | | note |",
        "|---|---|---:|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.scenario} | {r.metric} | {r.shown_value()} | {r.unit} | {r.target or ''} "
            f"| {r.mark()} | {r.note} |"
        )
    return "\n".join(out) + "\n"


async def run_all(args: argparse.Namespace) -> int:
    sizes = QUICK if args.mode == "quick" else FULL
    started = datetime.now(UTC)
    out = REPO / "bench" / "results" / started.strftime("%Y%m%dT%H%M%SZ")
    out.mkdir(parents=True, exist_ok=True)
    load_start = load_average()
    broker = BenchBroker(port=args.port)
    say(f"starting the bench broker on {broker.bootstrap} (load average {load_start})")
    t0 = time.monotonic()
    broker.start()
    bench = Bench(broker, args.mode, sizes, out, args.profile)
    bench.logs.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(bench.work, ignore_errors=True)
    wanted = args.only.split(",") if args.only else list(SCENARIOS)
    rows: list[Row] = []
    timings: dict[str, float] = {}
    try:
        for name in wanted:
            scenario, label = SCENARIOS[name]
            say(f"== {name}")
            begun = time.monotonic()
            try:
                rows += await asyncio.wait_for(scenario(bench), args.scenario_timeout)
            except Exception as exc:
                (bench.logs / f"{name}-error.txt").parent.mkdir(parents=True, exist_ok=True)
                (bench.logs / f"{name}-error.txt").write_text(traceback.format_exc())
                reason = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:160]
                say(f"{name} failed: {reason}")
                rows.append(Row.na(label, "(scenario failed)", "", reason))
            finally:
                stop_workers(bench.workers)
                bench.workers.clear()
            timings[name] = round(time.monotonic() - begun, 1)
    finally:
        if not args.keep_broker:
            broker.stop()
    meta = {
        "mode": args.mode,
        "started": started.isoformat(timespec="seconds"),
        "seconds": time.monotonic() - t0,
        "machine": machine_facts(broker.version),
        "load_start": load_start,
        "load_end": load_average(),
        "scenario_seconds": timings,
        "details": bench.results,
    }
    write_json(out / "results.json", {**meta, "rows": [asdict(r) for r in rows]})
    (out / "results.md").write_text(markdown(rows, meta))
    print()
    print(table(rows))
    print()
    print(
        f"load average {meta['load_start']} -> {meta['load_end']}; "
        f"{meta['seconds']:.0f} s; results in {out.relative_to(REPO)}/"
    )
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description="Handoff benchmarks (see bench/README.md)")
    parser.add_argument("--mode", choices=("quick", "full"), default="quick")
    parser.add_argument("--only", help=f"comma-separated subset of {','.join(SCENARIOS)}")
    parser.add_argument("--profile", action="store_true", help="py-spy the fold and the peer")
    parser.add_argument("--port", type=int, default=31092, help="bench broker client port")
    parser.add_argument("--keep-broker", action="store_true")
    parser.add_argument("--scenario-timeout", type=float, default=900.0)
    raise SystemExit(asyncio.run(run_all(parser.parse_args())))


if __name__ == "__main__":
    main()
