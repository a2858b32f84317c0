"""One tracking fold instance for the benchmarks: the real `build_fold` StatefulProcessor
on the real `StreamEngine`, in its own process, with a progress report for the
orchestrator (`bench/report.py`).

The only addition to the production wiring is a counting wrapper around the
fold's handler (one increment and one clock read per record). In `--restore`
mode it measures a cold start instead: resident memory before the engine starts,
the time until every assigned partition is restored, and the memory after.

    python -m bench.fold_worker --bootstrap 127.0.0.1:31092 --prefix run. --report r.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import random
import signal
import time
from pathlib import Path
from typing import Any

from handoff_events.runtime import metrics
from handoff_events.runtime.app import run_service, tune_gc
from handoff_events.runtime.logging import configure_logging
from handoff_events.stream.engine import StreamEngine
from handoff_tracking.domain.exceptions import ExceptionPolicy
from handoff_tracking.handlers import build_fold
from handoff_tracking.settings import TrackingSettings

from bench.report import Progress, rss_bytes

FIRST_READS = 5_000


async def run(args: argparse.Namespace) -> None:
    settings = TrackingSettings(
        kafka_bootstrap_servers=args.bootstrap,
        topic_prefix=args.prefix,
        partitions=args.partitions,
        state_dir=Path(args.state_dir),
        instance_id=args.instance,
        log_level="WARNING",
    )
    configure_logging("tracking", settings.log_level, json=settings.log_json)
    progress = Progress(Path(args.report))
    processor = build_fold(
        ExceptionPolicy(stuck_after=settings.stuck_after),
        settings.exception_check_every_s,
        remember=settings.store_unpacked_max,
    )
    handle = processor.handle

    def counted(envelope: Any, ctx: Any) -> Any:
        progress.tick()
        return handle(envelope, ctx)

    punctuate = processor.punctuate
    assert punctuate is not None
    passes = {"calls": 0}

    def timed(ctx: Any) -> Any:
        # The engine runs the timer once right after assignment, i.e. the moment every
        # partition is restored; it visits every state (decoding any the engine kept
        # encoded). So the first call marks "restored", and the end of the first call
        # per partition marks "one timer pass over the whole store done".
        if not passes["calls"]:
            progress.extra["restored_at"] = time.time()
            progress.extra["rss_restored"] = rss_bytes()
        passes["calls"] += 1
        began = time.monotonic()
        result = punctuate(ctx)
        passes["seconds"] = passes.get("seconds", 0.0) + time.monotonic() - began
        if passes["calls"] == len(progress.partitions or range(args.partitions)):
            progress.extra["timer_pass_s"] = passes["seconds"]
            progress.extra["rss_after_timer_pass"] = rss_bytes()
        return result

    processor = dataclasses.replace(processor, handle=counted, punctuate=timed)
    tune_gc()  # as ServiceApp.run does in production
    rss_before = rss_bytes()
    progress.extra["rss_before"] = rss_before
    progress.start()
    engine = StreamEngine(processor, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = time.time()
    progress.extra["started_at"] = started
    await engine.start()
    try:
        while not stop.is_set():
            ready = engine.ready
            progress.partitions = sorted(engine.tasks)
            # The first time only: a later rebalance (new tasks restoring) must not move
            # the moment the cold start ended, nor decode everything a second time.
            # A member that lost its assignment (a session expiry) is `ready` with no
            # tasks while it rejoins: the cold start is over only when it owns them all.
            owns_all = not args.restore or len(engine.tasks) == args.partitions
            if ready and owns_all and "ready_at" not in progress.extra:
                progress.extra["ready_at"] = time.time()
                if args.restore:
                    gc.collect()
                    progress.extra["rss_after"] = rss_bytes()
                    progress.extra["keys"] = sum(
                        len(t.store.committed) for t in engine.tasks.values()
                    )
                    progress.extra["restored_records"] = _metric_sum(metrics.RESTORED_RECORDS)
                    progress.extra["restore_seconds"] = _metric_sum(
                        metrics.RESTORE_SECONDS, suffix="_sum"
                    )
                    if args.first_reads:
                        progress.extra["first_reads"] = FIRST_READS
                        progress.extra["first_read_us"] = await _first_reads(engine, FIRST_READS)
                    # The engine may keep restored values encoded until first use; what
                    # they cost once every one is decoded (as a timer over all of them,
                    # or queries, will do) is the other half of the memory story.
                    if args.decode_all:
                        began = time.monotonic()
                        for task in list(engine.tasks.values()):
                            for n, key in enumerate(list(task.store.committed)):
                                task.store.get(key)  # decodes and keeps the decoded value
                                if not n % 500:
                                    # Seconds of decoding in one go starve the consumer's
                                    # heartbeats: under py-spy past the session timeout,
                                    # and the group then rebalanced (the restore ran again).
                                    await asyncio.sleep(0)
                        progress.extra["decode_all_s"] = time.monotonic() - began
                        gc.collect()
                        progress.extra["rss_decoded"] = rss_bytes()
            progress.ready = ready
            if engine.failure.is_set():
                progress.extra["failed"] = repr(engine.error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)
    finally:
        await engine.stop()
        progress.stop()


async def _first_reads(engine: StreamEngine[Any], count: int) -> float:
    """CPU µs per first read of a restored state, over `count` keys picked at random
    from every task (as the fold's next events will pick them): the decode, plus
    unpacking the key's record batch when no key of it has been read yet."""
    keys = [(task, key) for task in engine.tasks.values() for key in task.store.committed]
    picked = random.Random(7).sample(keys, min(count, len(keys)))
    del keys
    spent = 0.0
    for n, (task, key) in enumerate(picked):
        began = time.process_time()
        task.store.get(key)
        spent += time.process_time() - began
        if not n % 200:
            await asyncio.sleep(0)  # the heartbeats
    return spent / max(1, len(picked)) * 1e6


def _metric_sum(metric: Any, suffix: str = "_total") -> float:
    """Sum of a Prometheus metric's samples whose name ends with `suffix`, all labels."""
    return sum(
        sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith(suffix)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--report", required=True)
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--instance", default="bench-0")
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--restore", action="store_true", help="measure a cold start")
    parser.add_argument(
        "--no-decode-all",
        dest="decode_all",
        action="store_false",
        help="with --restore: skip decoding every state afterwards (big stores)",
    )
    parser.add_argument(
        "--no-first-reads",
        dest="first_reads",
        action="store_false",
        help="with --restore: leave the restored batches untouched (a catch-up follows)",
    )
    run_service(run(parser.parse_args()))


if __name__ == "__main__":
    main()
