"""`python -m chaos.run [--short|--long]`: the chaos runs outside pytest (`make chaos`).

Starts (or reuses) the local 3-broker cluster, holding the same exclusive lock as the
`kafka_cluster` test fixture, runs the pipeline with two instances of each service,
injects every fault in turn under a seeded load, and prints the table of
docs/reliability.md. Exit status 1 if any fault lost, changed or duplicated anything.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import signal
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

from chaos.faults import SHORT, kafkactl, long_form, run_scenario
from chaos.harness import REPO_ROOT, Pipeline, Verdict, delete_topics, table


async def _run(
    scenarios: list[str] | None, long: bool, scale: int, run_dir: Path, keep_topics: bool
) -> int:
    bootstrap, _ = await asyncio.to_thread(kafkactl.ensure_cluster, 180.0)
    prefix = f"chaos{uuid.uuid4().hex[:6]}."
    pipeline = Pipeline(str(bootstrap), prefix, run_dir)
    chosen = long_form(scale) if long else SHORT
    if scenarios:
        chosen = tuple(s for s in chosen if any(w in s.name for w in scenarios))
    verdicts: list[Verdict] = []
    started = time.monotonic()
    print(f"==> pipeline on {bootstrap}, topic prefix {prefix}, logs in {run_dir}", flush=True)
    await pipeline.start()
    try:
        for scenario in chosen:
            print(
                f"==> {scenario.name} (seed {scenario.seed}, {scenario.orders} orders)", flush=True
            )
            try:
                verdict = await run_scenario(pipeline, scenario)
            except Exception as exc:  # a harness or pipeline error fails this fault, not the run
                verdict = Verdict(scenario.name, 0, 0, Counter(), [], [], [repr(exc)], None)
            verdicts.append(verdict)
            print(("    ok " if verdict.ok else "    FAILED ") + verdict.explain(), flush=True)
            if verdict.recovery_s is None:
                print("    restarting every instance for the next fault", flush=True)
                await pipeline.restart_all()
    finally:
        await pipeline.stop()
        if not keep_topics:
            await delete_topics(pipeline.bootstrap, prefix)
    print()
    print(table(verdicts))
    print(f"\n{len(verdicts)} faults in {time.monotonic() - started:.0f} s")
    print(f"simulated tender responder restarted {pipeline.responder_restarts} time(s)")
    print(f"service instances restarted by supervision (exited on their own): "
          f"{len(pipeline.restarts) - pipeline.responder_restarts}")  # fmt: skip
    return 0 if all(v.ok for v in verdicts) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos.run", description=__doc__)
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--short", action="store_true", help="the make-test sizes (default)")
    form.add_argument("--long", action="store_true", help="5x the load per fault (~10-15 min)")
    parser.add_argument("--scale", type=int, default=5, help="load multiplier of --long")
    parser.add_argument("--only", action="append", help="run the faults whose name contains this")
    parser.add_argument("--run-dir", type=Path, default=REPO_ROOT / ".run" / "chaos")
    parser.add_argument("--keep-topics", action="store_true", help="keep the run's topics")
    args = parser.parse_args(argv)
    lock_path = kafkactl.RUN_DIR / ".cluster-session.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    # SIGTERM (timeout, CI cancel) unwinds like Ctrl-C, so the pipeline's processes are stopped.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with lock_path.open("a") as lock:
        print(f"==> waiting for the cluster lock {lock_path}", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)  # chaos runs must not overlap other cluster users
        run_dir = args.run_dir / time.strftime("%Y%m%dT%H%M%S")
        return asyncio.run(_run(args.only, args.long, args.scale, run_dir, args.keep_topics))


if __name__ == "__main__":
    sys.exit(main())
