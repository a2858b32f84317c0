"""SIGTERM drains a real service process well inside the Deployment's grace period.

The kubelet sends SIGTERM, waits terminationGracePeriodSeconds, then SIGKILLs. A
SIGKILL is safe (transactions make the work redo-able) but costs the next owner a full
restore and a session-timeout's wait, so a clean drain must fit the grace period with
room to spare. Measured against the real broker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from handoff_events.provision import provision

from tools.k8s import gen

pytestmark = pytest.mark.kafka
ROOT = Path(__file__).resolve().parents[2]
STAGES = [s.name for s in gen.SHAPES["order_intake"].stages]


def grace_period_s() -> int:
    docs = yaml.safe_load_all((ROOT / "k8s/base/services/order-intake.yaml").read_text())
    (deployment,) = [d for d in docs if d and d["kind"] == "Deployment"]
    return int(deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_ready(proc: subprocess.Popen[bytes], url: str, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            assert proc.poll() is None, f"service exited early with {proc.returncode}"
            try:
                if (await client.get(url, timeout=2)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if loop.time() > deadline:
                raise TimeoutError(f"{url} not ready after {timeout_s}s")
            await asyncio.sleep(0.2)


async def group_members(bootstrap: str, groups: list[str]) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        out: dict[str, Any] = {}
        # One group per request: aiokafka 0.14 cannot decode a DescribeGroups response
        # holding several groups from Kafka 4.x ("Buffer underrun decoding string").
        for group_id in groups:
            for response in await admin.describe_consumer_groups([group_id]):
                for group in response.to_object()["groups"]:
                    out[group["group"]] = (group["error_code"], group["state"], group["members"])
        return out
    finally:
        await admin.close()


async def test_sigterm_drains_and_exits_well_inside_the_grace_period(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "HANDOFF_TOPIC_PREFIX": prefix,
        "HANDOFF_PARTITIONS": "3",
        "HANDOFF_HTTP_HOST": "127.0.0.1",
        "HANDOFF_HTTP_PORT": str(port),
        "HANDOFF_STATE_DIR": str(tmp_path / "state"),
        "HANDOFF_CONFIG_DIR": str(ROOT / "deploy" / "config"),
        "HANDOFF_LOG_JSON": "true",
    }
    log = (tmp_path / "service.log").open("wb")
    # A real OS process (not asyncio's): the point is how it reacts to the kubelet's signal.
    proc = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-m", "handoff_order_intake"], env=env, cwd=ROOT, stdout=log, stderr=log
    )
    try:
        await wait_ready(proc, f"http://127.0.0.1:{port}/health/ready", timeout_s=60)
        groups = [f"{prefix}handoff.order_intake.{stage}" for stage in STAGES]
        before = await group_members(kafka_bootstrap, groups)
        assert all(len(members) == 1 for _, _, members in before.values()), before
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        grace = grace_period_s()
        returncode = await asyncio.to_thread(proc.wait, grace)
        drained_in = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    output = (tmp_path / "service.log").read_text(errors="replace")[-3000:]
    assert returncode == 0, output
    assert drained_in < grace, f"drain took {drained_in:.1f}s, grace period is {grace}s"
    print(f"order_intake drained in {drained_in:.2f}s (grace period {grace}s)")
    after = await group_members(kafka_bootstrap, groups)
    assert set(after) == set(groups)
    for group, (error_code, state, members) in after.items():
        assert error_code == 0, group
        assert members == [], f"{group} still has members ({state})"
