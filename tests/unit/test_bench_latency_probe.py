"""The benchmarks' latency probe counts only outputs of events sent while it collects."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from bench.common import LatencyProbe


class _Consumer:
    """Hands out one fetched batch, then waits like an idle long poll."""

    def __init__(self, records: list[Any]):
        self.batches = [{"tp": records}]

    async def getmany(self, **_: Any) -> dict[str, list[Any]]:
        if self.batches:
            return self.batches.pop(0)
        await asyncio.sleep(3600)
        return {}


def _output(sent_at: float) -> Any:
    stamp = datetime.fromtimestamp(sent_at, UTC).isoformat().encode()
    return SimpleNamespace(headers=[("ce_time", stamp)], timestamp=sent_at * 1000 + 5)


@pytest.mark.asyncio
async def test_outputs_of_events_sent_before_collecting_are_stale_not_samples() -> None:
    probe = LatencyProbe("127.0.0.1:1", "out")
    probe.collect()
    now = time.time()
    # The burst's tail (sent 40 s ago, committed only now) and two events of this phase.
    probe._consumer = _Consumer([_output(now - 40.0), _output(now), _output(now + 0.001)])
    task = asyncio.create_task(probe._run())
    for _ in range(50):
        if probe.seen == 3:
            break
        await asyncio.sleep(0.01)
    task.cancel()
    assert probe.seen == 3
    assert probe.stale == 1
    assert len(probe.samples) == 2 and max(probe.samples) < 10_000  # ms: not the 40 s one
