"""Scenario 1, the ceiling: what the broker itself does on this machine, measured with
Kafka's own Java tools (ProducerPerformance with acks=all, ConsumerPerformance,
EndToEndLatency), with records the size of Handoff's median carrier observation."""

from __future__ import annotations

import asyncio
import re
import statistics
import subprocess
import time
from typing import TYPE_CHECKING

from bench.common import Row, create_topic, observations, record_size, say

if TYPE_CHECKING:
    from bench.run import Bench


def median_event_size() -> tuple[int, int]:
    """(median record bytes incl. key and headers, median value bytes) of real encoded
    TrackingObserved events from the benchmark workload."""
    sample = observations(250, 8, run="size")
    return (
        int(statistics.median(record_size(r) for r in sample)),
        int(statistics.median(len(r[2]) for r in sample)),
    )


async def _java(bench: Bench, tool: str, *args: str, timeout_s: float = 300) -> str:
    cmd = ["java", "-Xmx512m", "-cp", bench.broker.classpath(), f"org.apache.kafka.tools.{tool}"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, *args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    text = out.decode(errors="replace")
    (bench.logs / f"ceiling-{tool}.log").write_text(text)
    if proc.returncode != 0:
        raise RuntimeError(f"{tool} exited {proc.returncode}: {text.strip().splitlines()[-1:]}")
    return text


async def run(bench: Bench) -> list[Row]:
    size, value_size = median_event_size()
    bench.results["event_size"] = {"record_bytes": size, "value_bytes": value_size}
    n = bench.sizes.perf_records
    topic = f"ceiling-{int(time.time())}"
    await create_topic(bench.bootstrap, topic, 12)
    await create_topic(bench.bootstrap, f"{topic}-e2e", 1)
    rows = [Row("ceiling", "median TrackingObserved size", size, "bytes",
                note=f"key+value+headers; value alone {value_size} B")]  # fmt: skip

    say(f"ceiling: ProducerPerformance {n:,} x {size} B, acks=all")
    out = await _java(
        bench, "ProducerPerformance",
        "--topic", topic, "--num-records", str(n), "--record-size", str(size),
        "--throughput", "-1", "--bootstrap-server", bench.bootstrap,
        "--producer-props", "acks=all", "enable.idempotence=true",
    )  # fmt: skip
    last = [line for line in out.splitlines() if "records sent" in line][-1]
    produced = float(re.search(r"([\d.]+) records/sec", last).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"([\d.]+) ms 99th", last)
    bench.results["ceiling_produce"] = produced
    rows.append(Row("ceiling", "produce (ProducerPerformance, acks=all)", produced, "rec/s",
                    note=f"{n:,} records; producer p99 {p99.group(1) if p99 else '?'} ms"))  # fmt: skip

    say("ceiling: ConsumerPerformance")
    out = await _java(
        bench, "ConsumerPerformance",
        "--bootstrap-server", bench.bootstrap, "--topic", topic,
        "--num-records", str(n), "--timeout", "60000",
    )  # fmt: skip
    lines = [line for line in out.splitlines() if line and line[0].isdigit()]
    cols = [c.strip() for c in lines[-1].split(",")]
    # start.time, end.time, MB, MB.sec, nMsg, nMsg.sec, rebalance.ms, fetch.ms, fetch.MB.sec, fetch.nMsg.sec
    consumed = float(cols[9]) if len(cols) > 9 else float(cols[5])
    rows.append(Row("ceiling", "consume (ConsumerPerformance)", consumed, "rec/s",
                    note="fetch.nMsg.sec (excludes the group join)"))  # fmt: skip

    say("ceiling: EndToEndLatency")
    e2e = bench.sizes.e2e_records
    out = await _java(
        bench, "EndToEndLatency", bench.bootstrap, f"{topic}-e2e", str(e2e), "all", str(size)
    )
    match = re.search(r"50th = ([\d.]+), 99th = ([\d.]+)", out)
    if match:
        rows.append(Row("ceiling", "end-to-end latency p50 (EndToEndLatency)",
                        float(match.group(1)), "ms", note=f"{e2e:,} round trips, acks=all"))  # fmt: skip
        rows.append(Row("ceiling", "end-to-end latency p99", float(match.group(2)), "ms"))
    else:
        rows.append(Row.na("ceiling", "end-to-end latency", "ms", "no percentiles in the output"))
    return rows
