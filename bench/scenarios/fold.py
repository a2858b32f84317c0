"""Scenario 2, the tracking fold: carrier observations folded into shipment state with
exactly-once effects, by the real fold stage on the real StreamEngine in one process.

Method (the peer, scenario 3, runs the very same steps):
1. start the processor on freshly provisioned topics (12 partitions) and wait until
   it owns its partitions;
2. warm up with a few hundred observations and wait until they are handled;
3. throughput: produce a burst of `fold_shipments` x 8 observations as fast as the
   producer goes; events/s = burst size / (time the last one was handled - time the
   burst started); afterwards check the group's committed offsets cover the burst;
4. latency: offer 2,000 events/s (open loop) and, separately, the measured maximum;
   p50/p99 from produce to the state record being visible to a read_committed reader.
"""

from __future__ import annotations

import asyncio
import collections
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handoff_events.runtime.settings import ServiceSettings

from bench import report
from bench.common import (
    OBSERVATIONS,
    PARTITIONS,
    STATE,
    STATE_TYPE,
    Row,
    Worker,
    at_least,
    at_most,
    blast,
    measure_latency,
    observations,
    provision_catalogue,
    say,
    spawn,
    stop_workers,
    wait_for,
)

if TYPE_CHECKING:
    from bench.run import Bench

TARGET_EVENTS = 20_000
TARGET_P99_MS = 50.0
FIXED_RATE = 2_000
DRAIN_S = 6.0
"""How long a latency phase keeps reading after its last send: the peer commits every 5 s,
and an output committed after the drain would be missing from its phase (and left out of
the next as stale)."""
WARMUP_SHIPMENTS = 100


def fold_worker(
    bench: Bench,
    prefix: str,
    name: str,
    restore: bool = False,
    decode_all: bool = True,
    first_reads: bool = True,
) -> Worker:
    rep = bench.work / f"{name}.json"
    argv = [
        sys.executable, "-m", "bench.fold_worker",
        "--bootstrap", bench.bootstrap, "--prefix", prefix, "--report", str(rep),
        "--state-dir", str(bench.work / f"{name}-state"), "--instance", name,
    ]  # fmt: skip
    if restore:
        argv.append("--restore")
        if not decode_all:
            argv.append("--no-decode-all")
        if not first_reads:
            argv.append("--no-first-reads")
    return spawn(name, argv, bench.logs, report=rep)


def reports(workers: list[Worker]) -> list[dict[str, Any]]:
    out = []
    for worker in workers:
        assert worker.report is not None
        out.append(report.read(worker.report) or {})
    return out


def total(workers: list[Worker], key: str = "count") -> int:
    return sum(int(r.get(key, 0)) for r in reports(workers))


def check_alive(workers: list[Worker]) -> None:
    for worker in workers:
        if not worker.alive():
            raise RuntimeError(f"{worker.name} exited ({worker.proc.returncode}): {worker.tail(5)}")


async def wait_ready(workers: list[Worker], timeout_s: float, partitions: int | None) -> None:
    def ready() -> bool:
        check_alive(workers)
        reps = reports(workers)
        if not all(r.get("ready") for r in reps):
            return False
        if partitions is None:
            return True
        owned = [len(r.get("partitions", [])) for r in reps]
        return all(owned) and sum(owned) == partitions

    if not await wait_for(ready, timeout_s):
        raise RuntimeError(f"workers not ready after {timeout_s:.0f}s: {reports(workers)}")


async def wait_count(workers: list[Worker], expected: int, timeout_s: float) -> bool:
    def done() -> bool:
        check_alive(workers)
        return total(workers) >= expected

    return await wait_for(done, timeout_s, interval_s=0.1)


async def burst(
    bench: Bench, workers: list[Worker], topic: str, shipments: int, run: str
) -> dict[str, Any]:
    """Steps 2 and 3 of the method: warm up, then one burst; events/s and CPU use."""
    warm = observations(WARMUP_SHIPMENTS, 4, run=f"w{run}")
    before = total(workers)
    await blast(bench.bootstrap, topic, warm)
    if not await wait_count(workers, before + len(warm), 120):
        raise RuntimeError("warm-up records were not handled within 120 s")
    records = observations(shipments, 8, run=run)
    before = total(workers)
    cpu_before = sum(w.cpu_seconds() for w in workers)
    started = time.time()
    produce_s = await blast(bench.bootstrap, topic, records)
    if not await wait_count(workers, before + len(records), 600):
        raise RuntimeError(f"burst not handled within 600 s ({total(workers) - before} done)")
    last = max(r.get("last_at", 0.0) for r in reports(workers))
    cpu = sum(w.cpu_seconds() for w in workers) - cpu_before
    elapsed = max(1e-6, last - started)
    return {
        "events": len(records),
        "seconds": round(elapsed, 3),
        "events_per_s": len(records) / elapsed,
        "produce_s": round(produce_s, 3),
        "cpu_cores": round(cpu / max(1e-6, time.time() - started), 2),
        # Load-independent(ish): on a shared machine the process gets a fraction of a core,
        # but the CPU it needs per event stays put.
        "events_per_cpu_s": round(len(records) / cpu) if cpu > 0 else None,
    }


async def profile(bench: Bench, worker: Worker, topic: str, name: str) -> list[str]:
    """Sample the worker with py-spy while it folds a backlog; the top frames by own time.

    The burst is written first and sampling starts once it is on the broker: the worker
    folds a backlog for the whole window (sampling during the write caught a worker that
    was mostly waiting for records, and a profile of mostly idle frames)."""
    py_spy = Path(sys.executable).parent / "py-spy"
    if not py_spy.exists():
        return ["py-spy not installed (uv sync --group bench)"]
    out = bench.out / f"profile-{name}.txt"
    seconds = bench.sizes.profile_s
    records = observations(bench.sizes.fold_shipments * 2, 8, run=f"p{name[:3]}")
    await blast(bench.bootstrap, topic, records)
    proc = await asyncio.create_subprocess_exec(
        str(py_spy), "record", "--pid", str(worker.proc.pid), "--duration", str(seconds),
        "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking",
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, err = await proc.communicate()
    if proc.returncode != 0 or not out.exists():
        return [f"py-spy failed: {err.decode(errors='replace').strip()[-200:]}"]
    return top_frames(out)


def top_frames(collapsed: Path, n: int = 15) -> list[str]:
    """Own-time and inclusive-time leaders from py-spy's collapsed stacks."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        weight = int(count)
        samples += weight
        own[_short(frames[-1])] += weight
        for frame in {_short(f) for f in frames}:
            inclusive[frame] += weight
    if not samples:
        return ["no samples"]
    lines = [f"{samples} samples; own time:"]
    lines += [f"  {100 * c / samples:5.1f}%  {f}" for f, c in own.most_common(n)]
    lines.append("inclusive time:")
    lines += [f"  {100 * c / samples:5.1f}%  {f}" for f, c in inclusive.most_common(n + 10)]
    return lines


def _short(frame: str) -> str:
    """`handle (/…/src/handoff_tracking/handlers.py:63)` -> `handle (handoff_tracking/handlers.py)`:
    no install prefix, no line number, so a function's lines add up."""
    head, _, tail = frame.partition(" (")
    where = tail.rstrip(")").rsplit(":", 1)[0]
    for marker in ("site-packages/", "/src/", "/work/main/"):
        where = where.split(marker)[-1]
    return f"{head} ({where})"


async def measure(
    bench: Bench,
    scenario: str,
    start: Callable[[str], Worker],
    prefix: str,
    output_topic: str,
) -> dict[str, Any]:
    """The whole method for one processor (Handoff's fold or the peer)."""
    await provision_catalogue(bench.bootstrap, prefix)
    worker = start(prefix)
    bench.workers.append(worker)
    result: dict[str, Any] = {}
    try:
        await wait_ready([worker], 180, partitions=None)
        topic = prefix + OBSERVATIONS
        say(f"{scenario}: burst of {bench.sizes.fold_shipments * 8:,} observations")
        result["throughput"] = await burst(bench, [worker], topic, bench.sizes.fold_shipments, "t")
        say(f"{scenario}: {result['throughput']['events_per_s']:,.0f} events/s; "
            f"latency at {FIXED_RATE}/s")  # fmt: skip
        seconds = bench.sizes.fixed_load_s
        fixed = observations(int(FIXED_RATE * seconds / 8) + 1, 8, run="f")
        result["fixed"] = await measure_latency(
            bench.bootstrap, topic, prefix + output_topic, fixed, FIXED_RATE, seconds, STATE_TYPE,
            drain_s=DRAIN_S,
        )  # fmt: skip
        rate = max(FIXED_RATE, result["throughput"]["events_per_s"])
        seconds = bench.sizes.max_load_s
        say(f"{scenario}: latency at the measured maximum, {rate:,.0f}/s")
        flat_out = observations(int(rate * seconds / 8) + 1, 8, run="m")
        result["max"] = await measure_latency(
            bench.bootstrap, topic, prefix + output_topic, flat_out, rate, seconds, STATE_TYPE,
            drain_s=DRAIN_S,
        )  # fmt: skip
        if bench.profile:
            say(f"{scenario}: profiling with py-spy")
            result["profile"] = await profile(bench, worker, topic, scenario)
        result["rss_mb"] = round(worker.rss() / 2**20, 1)
    finally:
        stop_workers([worker])
    return result


def _ms(result: dict[str, Any], key: str) -> str:
    value = result.get(key)
    return "n/a" if value is None else f"{value:,.0f} ms"


def _stale(result: dict[str, Any]) -> str:
    stale = result.get("stale") or 0
    return (
        f"; {stale:,} outputs of the previous phase's events, committed late, not counted"
        if stale
        else ""
    )


def rows_for(scenario: str, result: dict[str, Any], ceiling: float | None) -> list[Row]:
    tp = result["throughput"]
    eps = tp["events_per_s"]
    fixed, flat = result["fixed"], result["max"]
    rows = [
        Row(scenario, "throughput (burst, exactly-once)", eps, "events/s",
            f"≥ {TARGET_EVENTS:,}" if scenario == "tracking fold" else None,
            at_least(eps, TARGET_EVENTS) if scenario == "tracking fold" else None,
            f"{tp['events']:,} events in {tp['seconds']} s; {tp['cpu_cores']} cores busy; "
            f"{tp['events_per_cpu_s'] or 0:,} events per CPU-second"),
        Row(scenario, f"latency p50 @ {FIXED_RATE:,}/s offered", fixed["p50_ms"], "ms",
            note=f"achieved {fixed['achieved_rate']:,.0f}/s, {fixed['samples']:,} samples"
            + _stale(fixed)),
        Row(scenario, f"latency p99 @ {FIXED_RATE:,}/s offered", fixed["p99_ms"], "ms",
            f"≤ {TARGET_P99_MS:.0f}" if scenario == "tracking fold" else None,
            at_most(fixed["p99_ms"], TARGET_P99_MS) if scenario == "tracking fold" else None),
        Row(scenario, "latency p50 @ max offered", flat["p50_ms"], "ms",
            note=f"offered {flat['offered_rate']:,.0f}/s, achieved {flat['achieved_rate']:,.0f}/s"
            + _stale(flat)),
        Row(scenario, "latency p99 @ max offered", flat["p99_ms"], "ms"),
    ]  # fmt: skip
    if scenario == "tracking fold":
        # Quix Streams stamps its output with the input's timestamp (as Kafka Streams
        # does), so a split at the output's CreateTime only means something for Handoff.
        rows[3:3] = [
            Row(scenario, f"  of which produced → output sent, p50 @ {FIXED_RATE:,}/s",
                fixed.get("handled_p50_ms"), "ms",
                note=f"p99 {_ms(fixed, 'handled_p99_ms')}; the output record's CreateTime "
                "minus the event's: fetch, queueing, handling (the batch it waits for "
                "included)"),
            Row(scenario, f"  of which sent → visible, p50 @ {FIXED_RATE:,}/s",
                fixed.get("visible_p50_ms"), "ms",
                note=f"p99 {_ms(fixed, 'visible_p99_ms')}; arrival at a read_committed "
                "reader minus the output's CreateTime: the transaction's commit, its "
                "marker, the read"),
        ]  # fmt: skip
    if ceiling:
        rows.append(Row(scenario, "ratio to the ceiling (produce)", eps / ceiling, "x",
                        note="fold events/s ÷ ProducerPerformance rec/s"))  # fmt: skip
    return rows


async def run(bench: Bench) -> list[Row]:
    prefix = f"fold{bench.stamp}."
    result = await measure(
        bench, "fold", lambda p: fold_worker(bench, p, "fold-worker"), prefix, STATE
    )
    bench.results["fold"] = result
    rows = rows_for("tracking fold", result, bench.results.get("ceiling_produce"))
    return rows + await python_path_rows(bench)


async def _fold_cpu(*args: str) -> dict[str, Any] | str:
    """One `bench.fold_cpu` run in its own process: its JSON, or the tail of its stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.fold_cpu", "--json", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    if proc.returncode != 0:
        return err.decode()[-300:]
    found: dict[str, Any] = json.loads(out)
    return found


WAVES = 6
"""The bounded-memory run: twice the fold's shipments in this many waves, one after the
other, with the stores bounded to a fifth of the total: more than one wave (the
shipments in flight), far less than all of them."""


async def python_path_rows(bench: Bench) -> list[Row]:
    """The fold's CPU per event without a broker (`bench.fold_cpu`), with the configured
    compression and without: what one process can fold per core, whatever Kafka does.
    Then the store's memory per shipment: all of them in flight and unbounded (the
    same run), and days of traffic (waves of shipments that start, are delivered and
    are not seen again) through stores bounded below the total."""
    codec = ServiceSettings().kafka_compression_type
    shipments = max(1_000, bench.sizes.fold_shipments)
    found: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys([codec, "none"]):
        got = await _fold_cpu("--codec", name, "--shipments", str(shipments))
        if isinstance(got, str):
            return [Row.na("tracking fold", "CPU per event, Python path alone (no broker)",
                           "µs", got)]  # fmt: skip
        found[name] = got
    main, bare = found[codec], found["none"]
    bench.results["fold_python_path"] = found
    rows = [
        Row("tracking fold", "CPU per event, Python path alone (no broker)", main["total_us"],
            "µs", note=f"handling {main['handle_us']:.0f} + commit-side encoding "
            f"{main['commit_encode_us']:.0f} µs ({codec}; {bare['total_us']:.0f} µs uncompressed)"
            f"; {main['events']:,} events in-process (bench.fold_cpu)"),
        Row("tracking fold", "one core's ceiling, Python path alone", main["events_per_cpu_s"],
            "events/s", note="1e6 ÷ the row above: no broker, no I/O, no waiting"),
    ]  # fmt: skip
    total, bound = 2 * shipments, 2 * shipments // 5
    waves = await _fold_cpu(
        "--codec", codec, "--shipments", str(total), "--waves", str(WAVES),
        "--unpacked-max", str(bound),
    )  # fmt: skip
    metric = "store memory per shipment, stores bounded (HANDOFF_STORE_UNPACKED_MAX)"
    if isinstance(waves, str):
        return [*rows, Row.na("tracking fold", metric, "B", waves)]
    bench.results["fold_bounded_store"] = waves
    rows.append(
        Row("tracking fold", metric, waves["store_rss_per_shipment"], "B",
            note=f"{total:,} shipments in {WAVES} waves, bound {bound:,}: RSS growth ÷ "
            f"shipments ({waves['total_us']:.0f} µs per event); unbounded with all "
            f"{shipments:,} in flight: {main['store_rss_per_shipment']:,.0f} B "
            "(bench.fold_cpu)")
    )  # fmt: skip
    return rows


__all__ = ["PARTITIONS", "fold_worker", "measure", "wait_ready"]
