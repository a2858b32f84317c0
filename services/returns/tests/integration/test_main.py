"""`python -m handoff_returns` starts, becomes ready, accepts a request and drains on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest
from handoff_events.provision import provision

from tests.support.streams import until

pytestmark = pytest.mark.kafka
REPO = Path(__file__).resolve().parents[4]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_module_runs_serves_and_drains(
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
        "HANDOFF_HTTP_PORT": str(port),
        "HANDOFF_STATE_DIR": str(tmp_path),
        "HANDOFF_CONFIG_DIR": str(REPO / "deploy" / "config"),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "handoff_returns",
        env=env,
        cwd=str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            ready = False

            async def probe() -> None:
                nonlocal ready
                try:
                    ready = (await client.get("/health/ready")).status_code == 200
                except httpx.HTTPError:
                    ready = False

            loop = asyncio.get_running_loop()
            deadline = loop.time() + 45
            while not ready:
                if proc.returncode is not None:
                    early = await proc.stdout.read() if proc.stdout else b""
                    raise AssertionError(f"exited before ready: {early.decode()[-2000:]}")
                assert loop.time() < deadline, "not ready within 45 s"
                await probe()
                if not ready:
                    await asyncio.sleep(0.2)
            body = {
                "return_request_id": "S-1",
                "order_id": "A-1",
                "requested_at": "2026-11-20T10:00:00Z",
                "items": [{"sku": "SKU-1", "quantity": 1}],
                "reason_code": "damaged",
                "method": "drop_off",
            }
            accepted = await client.post(
                "/v1/returns", json=body, headers={"Authorization": "Bearer acme-key"}
            )
            assert accepted.status_code == 202, accepted.text
            assert (await client.get("/openapi.json")).json()["paths"]["/v1/returns"]
            assert b"handoff_records" in (await client.get("/metrics")).content
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        output, _ = await asyncio.wait_for(proc.communicate(), timeout=40)
    assert proc.returncode == 0, output.decode(errors="replace")[-2000:]
    await until(lambda: proc.returncode == 0, timeout=1, what="clean exit")
