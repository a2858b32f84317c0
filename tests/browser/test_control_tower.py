"""The control tower in a real headless Chromium, against the real broker.

The test provisions its own prefixed topics, produces shipment states and KPI
snapshots itself (no other service runs), starts `python -m handoff_control_tower`
as a process, and drives the page with tools/browser/control_tower.mjs
(playwright-core on the system's /usr/bin/chromium): the board fills, the
shipment count rises live while the page stays open, a row of the exception
queue opens that shipment's timeline. Screenshots land in test-artifacts/.

Needs `make browser-tools` (chromium + `npm ci` in tools/browser).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from handoff_events.provision import provision

from tests.browser.seed import kpi_snapshots, produce_kpis, produce_states, shipment_state

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "browser"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
FIRST, MORE = 40, 25


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _FakeTracking(BaseHTTPRequestHandler):
    """A stand-in service's /metrics: a counter growing 40 records/s, a steady lag."""

    started = time.monotonic()

    def do_GET(self) -> None:
        records = int(40 * (time.monotonic() - self.started))
        body = (
            "# TYPE handoff_records_processed_total counter\n"
            f'handoff_records_processed_total{{service="tracking",stage="fold",topic="x"}} {records}\n'
            "# TYPE handoff_consumer_lag gauge\n"
            'handoff_consumer_lag{service="tracking",stage="fold",topic="x",partition="0"} 17\n'
            "# TYPE handoff_dlq_records_total counter\n"
            'handoff_dlq_records_total{service="tracking",stage="fold",topic="x",reason="schema_violation"} 2\n'
        ).encode()
        self.send_response(200)
        self.send_header("content-type", "text/plain; version=0.0.4")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def browser_tools() -> None:
    """Fail (not skip) with the fix when the browser is missing."""
    assert CHROMIUM.exists(), "no /usr/bin/chromium: run `make browser-tools`"
    assert (TOOLS / "node_modules" / "playwright-core").exists(), "run `make browser-tools`"
    ARTIFACTS.mkdir(exist_ok=True)


@pytest.fixture
def fake_tracking() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeTracking)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def _tail_of(log: Path) -> str:
    return log.read_text()[-3000:]


async def _wait_ready(
    url: str, proc: asyncio.subprocess.Process, log: Path, within: float = 45.0
) -> None:
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            if proc.returncode is not None:
                raise AssertionError(
                    f"control tower exited with {proc.returncode}: {_tail_of(log)}"
                )
            try:
                if (await client.get(f"{url}/health/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("control tower never became ready")
            await asyncio.sleep(0.2)


@pytest.mark.kafka
@pytest.mark.timeout(150)
@pytest.mark.usefixtures("browser_tools")
async def test_control_tower_page_is_live_and_drills_down(
    kafka_bootstrap: str, unique_name: str, fake_tracking: str, tmp_path: Path
) -> None:
    prefix = f"{unique_name}."
    await provision(kafka_bootstrap, prefix=prefix, partitions=3, replication_factor=1)
    base = datetime.now(UTC) - timedelta(hours=26)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "HANDOFF_TOPIC_PREFIX": prefix,
        "HANDOFF_HTTP_PORT": str(port),
        "HANDOFF_SERVICE_URLS": f"tracking={fake_tracking},control_tower={url}",
        "HANDOFF_SCRAPE_EVERY_S": "1",
        "HANDOFF_LOG_JSON": "false",
    }
    tower_log = tmp_path / "control-tower.log"
    with tower_log.open("wb") as log_file:  # a file, not a pipe: a full pipe would block the tower
        tower = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "handoff_control_tower",
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=log_file,
        )
    browser: asyncio.subprocess.Process | None = None
    try:
        await produce_states(producer, prefix, [shipment_state(n, base=base) for n in range(FIRST)])
        await produce_kpis(producer, prefix, kpi_snapshots(base.date()))
        await _wait_ready(url, tower, tower_log)

        async with httpx.AsyncClient(base_url=url, timeout=5.0) as api:
            summary = (await api.get("/api/summary")).json()
            assert summary["shipments"] == FIRST
            assert sum(row["count"] for row in summary["by_status"]) == FIRST
            carriers = (await api.get("/api/carriers")).json()["items"]
            assert {c["carrier"] for c in carriers} == {"swift", "nordpost", "urbanfleet"}
            swift = next(c for c in carriers if c["carrier"] == "swift")
            assert swift["delivered"] == 240
            assert swift["cost_per_delivery"] == [{"amount": 920, "currency": "EUR"}]
            deadline = time.monotonic() + 20
            while True:  # two scrapes of the fake service make a rate
                services = {s["name"]: s for s in (await api.get("/api/services")).json()["items"]}
                if services["tracking"]["records_per_s"] > 0:
                    break
                assert time.monotonic() < deadline, services
                await asyncio.sleep(0.3)
            assert services["tracking"]["lag_total"] == 17
            assert services["tracking"]["dlq_total"] == 2
            missing = await api.get("/api/shipments/shp_nope")
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"

        browser = await asyncio.create_subprocess_exec(
            "node",
            str(TOOLS / "control_tower.mjs"),
            "--url",
            f"{url}/",
            "--initial",
            str(FIRST),
            "--target",
            str(FIRST + MORE),
            "--screenshot-dir",
            str(ARTIFACTS),
            cwd=TOOLS,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert browser.stdout is not None
        steps: dict[str, dict[str, object]] = {}
        while True:
            line = await asyncio.wait_for(browser.stdout.readline(), timeout=90)
            if not line:
                break
            step = json.loads(line)
            steps[str(step["step"])] = step
            if step["step"] == "board":
                # The page is open and shows the first batch: now more arrive.
                assert step["shipments"] == FIRST
                more = [shipment_state(n, base=base) for n in range(FIRST, FIRST + MORE)]
                await produce_states(producer, prefix, more)
            if step["step"] == "error":
                raise AssertionError(f"browser: {step['message']}")
        assert await browser.wait() == 0, (await browser.stderr.read()).decode()[-2000:]  # type: ignore[union-attr]
        assert steps["live"]["shipments"] == FIRST + MORE
        timeline = steps["timeline"]
        assert timeline["title"] == timeline["shipment"]
        assert timeline["hash"] == f"#/shipments/{timeline['shipment']}"
        assert int(str(timeline["entries"])) >= 3
        assert "done" in steps
        shot = ARTIFACTS / "control-tower.png"
        assert shot.stat().st_size > 20_000
    finally:
        if browser is not None and browser.returncode is None:
            browser.kill()
        await producer.stop()
        if tower.returncode is None:
            tower.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(tower.wait(), timeout=20)
            except TimeoutError:
                tower.kill()
                raise
    assert tower.returncode == 0, _tail_of(tower_log)
