"""Scenario 5, webhook ingress: signed carrier scans accepted per second over HTTP by the
tracking service (`POST /v1/carriers/{carrier}/events`, HMAC-SHA256 over
`<timestamp>.<body>`, 202 only after Kafka acked with acks=all).

The load comes from `wrk` (a separate process, C, 2 threads, 64 connections) with a Lua
script that replays requests signed beforehand by this module with the carrier's
secret (inside the 5-minute replay window). Accepted events are counted on the
broker (end offsets of the raw carrier topic), not from HTTP answers.

Four runs: the whole tracking service in one process (webhook, join, fold, KPIs,
queries) with one scan per request (webhooks as EasyPost sends them) and with 20; then
the webhook as its own deployment (`HANDOFF_TRACKING_STAGES=ingress`), one process and
two processes sharing the port (`HANDOFF_HTTP_REUSE_PORT`), one scan per request. The
stages are not running during the webhook-only runs (in production they run in another
Deployment, on other cores).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer
from handoff_events import topics
from handoff_events.contracts import CarrierTrackingEvent
from handoff_events.values import Location
from handoff_tracking.ingress.settings import DEV_CARRIER_SECRETS, parse_carrier_secrets
from handoff_tracking.ingress.signature import signature_header

from bench.common import (
    Row,
    Worker,
    at_least,
    provision_catalogue,
    say,
    service_env,
    spawn,
    stop_workers,
    wait_for,
)

if TYPE_CHECKING:
    from bench.run import Bench

TARGET = 5_000
PORT = 28184
LUA = """
local reqs = {}
local n = 0
function init(args)
  for line in io.lines(args[1]) do
    local ts, sig, body = line:match("^([^\\t]*)\\t([^\\t]*)\\t(.*)$")
    reqs[#reqs + 1] = wrk.format("POST", "/v1/carriers/swift/events", {
      ["Content-Type"] = "application/json",
      ["X-Handoff-Timestamp"] = ts,
      ["X-Handoff-Signature"] = sig,
    }, body)
  end
end
function request()
  n = n % #reqs + 1
  return reqs[n]
end
"""


def _cpu(services: list[Worker]) -> float | None:
    seconds = [cpu_seconds(s.proc.pid) for s in services]
    return None if None in seconds else sum(s for s in seconds if s is not None)


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (Linux /proc), or None elsewhere. On a
    shared, loaded box the wall-clock rate mostly measures the load; CPU per event does not."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def signed_requests(count: int, per_request: int, run: str) -> list[str]:
    """Tab-separated `timestamp, signature, body` lines, bodies of `per_request` scans."""
    secret = parse_carrier_secrets(DEV_CARRIER_SECRETS)["swift"]
    now = datetime.now(UTC)
    stamp = int(now.timestamp())
    lines = []
    for r in range(count):
        scans = [
            CarrierTrackingEvent(
                carrier="swift",
                tracking_number=f"SW{(r * per_request + i) % 10**9:09d}",
                event_id=f"swift-{run}-{r}-{i}",
                code="ARR",
                occurred_at=now - timedelta(minutes=5),
                description="Arrived at a Swift hub",
                location=Location(city="Berlin", postal_code="10115", country="DE"),
            )
            for i in range(per_request)
        ]
        body = msgspec.json.encode(scans[0] if per_request == 1 else scans)
        lines.append(f"{stamp}\t{signature_header(secret, stamp, body)}\t{body.decode()}")
    return lines


async def accepted(bench: Bench, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bench.bootstrap, group_id=None)
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic) or set()
        if not parts:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic) or set()
        from aiokafka.structs import TopicPartition

        tps = [TopicPartition(topic, p) for p in parts]
        return sum((await consumer.end_offsets(tps)).values())
    finally:
        await consumer.stop()


async def run(bench: Bench) -> list[Row]:
    wrk = shutil.which("wrk")
    if wrk is None:
        return [Row.na("webhook ingress", "signed events accepted", "events/s",
                       "wrk not installed (apt-get install wrk)", f"≥ {TARGET:,}")]  # fmt: skip
    # The whole tracking service (webhook, join, fold, KPIs, queries in one process), then
    # the webhook as its own deployment (HANDOFF_TRACKING_STAGES=ingress): the same HTTP
    # edge without the stages sharing its process (they would run in a second
    # deployment; here they are not running, so their CPU is not on this machine).
    rows = await measure(bench, wrk, "all", (1, 20))
    rows += await measure(bench, wrk, "ingress", (1,))
    rows += await measure(bench, wrk, "ingress", (1,), processes=2)
    return rows


async def measure(
    bench: Bench, wrk: str, stages: str, per_requests: tuple[int, ...], processes: int = 1
) -> list[Row]:
    prefix = f"hook{stages}{processes}{bench.stamp}."
    await provision_catalogue(bench.bootstrap, prefix)
    services = []
    for n in range(processes):
        env = service_env(bench.bootstrap, prefix, bench.work / f"hook-state-{stages}-{n}", PORT)
        env["HANDOFF_TRACKING_STAGES"] = stages
        env["HANDOFF_INSTANCE_ID"] = f"hook-{stages}-{n}"
        if processes > 1:
            env["HANDOFF_HTTP_REUSE_PORT"] = "true"  # one port, the kernel spreads connections
        services.append(spawn(
            f"tracking-webhook-{stages}-{n}", [sys.executable, "-m", "handoff_tracking"],
            bench.logs, env,
        ))  # fmt: skip
    bench.workers.extend(services)
    try:
        return await _measure(bench, wrk, services, prefix, stages, per_requests)
    finally:
        stop_workers(services)


async def _measure(
    bench: Bench,
    wrk: str,
    services: list[Worker],
    prefix: str,
    stages: str,
    per_requests: tuple[int, ...],
) -> list[Row]:
    base = f"http://127.0.0.1:{PORT}"
    async with httpx.AsyncClient(base_url=base, timeout=5) as client:

        async def ready() -> bool:
            for service in services:
                if not service.alive():
                    raise RuntimeError(f"tracking exited: {service.tail(5)}")
            try:
                return (await client.get("/health/ready")).status_code == 200
            except httpx.HTTPError:
                return False

        if not await wait_for(ready, 180, 0.5):
            raise RuntimeError("the tracking service was not ready within 180 s")
        if len(services) > 1:
            # One answered; the port is shared, so give the others their start-up too.
            await asyncio.sleep(3.0)
        # Signed requests first (each on a new connection, so every process gets some).
        for line in signed_requests(4 * len(services), 1, "warm"):
            warm = line.split("\t")
            answer = await client.post(
                "/v1/carriers/swift/events",
                content=warm[2].encode(),
                headers={"X-Handoff-Timestamp": warm[0], "X-Handoff-Signature": warm[1],
                         "Content-Type": "application/json", "Connection": "close"},
            )  # fmt: skip
            if answer.status_code != 202:
                raise RuntimeError(
                    f"warm-up request answered {answer.status_code}: {answer.text[:200]}"
                )
    script = bench.work / "webhook.lua"
    script.write_text(LUA)
    topic = prefix + topics.CARRIER_TRACKING
    rows = []
    for per_request in per_requests:
        lines = signed_requests(4000 if per_request == 1 else 400, per_request, f"b{per_request}")
        data = bench.work / f"webhook-{stages}-{per_request}.tsv"
        data.write_text("\n".join(lines) + "\n")
        before = await accepted(bench, topic)
        seconds = bench.sizes.webhook_s
        say(f"webhook ({stages}): wrk {seconds}s, {per_request} scan(s) per request")
        cpu_before = _cpu(services)
        began = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            wrk, "-t2", "-c64", f"-d{seconds}s", "--timeout", "10s", "-s", str(script), base,
            "--", str(data), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await proc.communicate()
        took = time.monotonic() - began
        text = out.decode(errors="replace")
        (bench.logs / f"wrk-{stages}-{per_request}.txt").write_text(text)
        await asyncio.sleep(1.0)
        events = await accepted(bench, topic) - before
        cpu_after = _cpu(services)
        cpu_note = (
            f"; tracking CPU {(cpu_after - cpu_before) / events * 1e6:,.0f} µs/event"
            if cpu_before is not None and cpu_after is not None and events
            else ""
        )
        rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
        latency = re.search(r"Latency\s+(\S+)\s+(\S+)\s+(\S+)", text)
        rate = events / min(took, seconds + 0.5)
        what = f"signed events accepted, {per_request}/request"
        if stages == "ingress":
            what += ", webhook-only " + (
                "process" if len(services) == 1 else f"x{len(services)} (one port)"
            )
        rows.append(Row(
            "webhook ingress", what, rate, "events/s",
            f"≥ {TARGET:,}", at_least(rate, TARGET),
            f"wrk 64 conns: {rps.group(1) if rps else '?'} req/s, "
            f"non-2xx {bad.group(1) if bad else 0}, mean latency "
            f"{latency.group(1) if latency else '?'}; counted on the broker{cpu_note}"
            + ("; HANDOFF_TRACKING_STAGES=ingress, stages not running" if stages == "ingress"
               else "; whole service: webhook + join + fold + KPIs + queries"),
        ))  # fmt: skip
    return rows
