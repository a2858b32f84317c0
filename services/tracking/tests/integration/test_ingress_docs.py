"""docs/integrating-carriers.md's `openssl` + `curl` snippet, run as written against a live webhook
(uvicorn on a free port; the publisher is a fake, so no broker is needed)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from handoff_events.envelope import Envelope
from handoff_events.runtime.http import Problem, problem_handler
from handoff_events.runtime.settings import ServiceSettings
from handoff_tracking.ingress.code_tables import load_code_tables
from handoff_tracking.ingress.ownership import OwnershipFollower, OwnershipIndex
from handoff_tracking.ingress.settings import DEV_CARRIER_SECRETS, parse_carrier_secrets
from handoff_tracking.ingress.webhook import CarrierWebhook, raw_event_id
from starlette.applications import Starlette

from tests.support.streams import until

ROOT = Path(__file__).resolve().parents[4]
DOC = ROOT / "docs" / "integrating-carriers.md"


def snippet() -> str:
    match = re.search(r"```bash\n(# sign-and-post\.sh.*?)```", DOC.read_text(), re.S)
    assert match, "the sign-and-post snippet is missing from the doc"
    return match.group(1)


class LoadedOwnership(OwnershipFollower):
    def __init__(self) -> None:
        super().__init__(ServiceSettings(), OwnershipIndex())

    async def caught_up(self, timeout_s: float) -> bool:
        return True


class FakePublisher:
    def __init__(self) -> None:
        self.published: list[tuple[str, str, Envelope[Any]]] = []

    async def publish_many(self, items: list[tuple[str, str, Envelope[Any]]]) -> None:
        self.published.extend(items)


@pytest.mark.real_clock  # the snippet signs with `date +%s`
async def test_the_documented_snippet_signs_and_posts(tmp_path: Path) -> None:
    publisher = FakePublisher()
    webhook = CarrierWebhook(
        tables=load_code_tables(ROOT / "deploy" / "config" / "carrier-codes"),
        secrets=parse_carrier_secrets(DEV_CARRIER_SECRETS),
        ownership=LoadedOwnership(),
        clock=lambda: datetime.now(UTC),  # the snippet signs with `date +%s`
        replay_window=timedelta(minutes=5),
        max_body_bytes=1_048_576,
        max_events=500,
    )
    app = Starlette(routes=[webhook.route()], exception_handlers={Problem: problem_handler})
    app.state.app = SimpleNamespace(publisher=publisher, _on_stop=[])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    serving = asyncio.create_task(server.serve())
    try:
        await until(lambda: server.started, 10, "webhook server started")
        port = server.servers[0].sockets[0].getsockname()[1]
        env = {**os.environ, "HANDOFF_URL": f"http://127.0.0.1:{port}"}

        async def run(extra: dict[str, str]) -> tuple[int, str]:
            proc = await asyncio.create_subprocess_exec(
                "bash",
                "-c",
                snippet(),
                cwd=tmp_path,
                env={**env, **extra},
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 30)
            return proc.returncode or 0, out.decode() + err.decode()

        code, output = await run({})
        assert code == 0, output
        assert json.loads(output) == {"accepted": 1, "ids": [raw_event_id("swift", "swift-8841")]}
        [(_, key, envelope)] = publisher.published
        assert key == "swift/SW123456789" and envelope.data.code == "OFD"

        code, output = await run({"SECRET": "not-the-secret"})
        assert code != 0 and "bad_signature" in output
        assert len(publisher.published) == 1
    finally:
        server.should_exit = True
        await serving
