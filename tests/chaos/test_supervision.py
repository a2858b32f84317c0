"""The chaos harness's supervision (no broker needed): an instance that exits on its own is
restarted after a back-off and counted with its reason; one the harness retires is not."""

from __future__ import annotations

import asyncio
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from chaos import harness
from chaos.harness import Instance, Pipeline, Verdict


class _Pipeline(Pipeline):
    """A pipeline whose 'service' is a short Python script: exits with 3 after printing a
    stage failure, or keeps running when `exit_code` is None."""

    exit_code: int | None = 3

    def _spawn(self, instance: Instance) -> None:
        script = (
            "import sys, time; print('stage fold failed: RuntimeError(wedged)', flush=True); "
            f"sys.exit({self.exit_code})"
            if self.exit_code is not None
            else "import time; time.sleep(60)"
        )
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{instance.name}.log").open("ab") as log:
            instance.process = subprocess.Popen(
                [sys.executable, "-c", script], stdout=log, stderr=subprocess.STDOUT
            )
        instance.stopped = False
        instance.retiring = False
        instance.exited_at = None


async def _until(check: object, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.1)


async def test_an_instance_that_exits_on_its_own_is_restarted_with_backoff(
    tmp_path: Path,
) -> None:
    pipeline = _Pipeline("127.0.0.1:1", "t.", tmp_path)
    pipeline._supervisor = asyncio.create_task(pipeline._supervise_forever())
    try:
        instance = pipeline.add("tracking")
        await _until(lambda: len(pipeline.restarts) >= 3)
        # Each exit in a row doubles the back-off: 1 s, then 2 s between the restarts.
        first, second, third = pipeline.restarts[:3]
        assert second.at - first.at >= 1.0
        assert third.at - second.at >= 2.0
        assert instance.exits_in_a_row >= 3
        assert first.instance == "tracking-1"
        assert first.exit_code == 3
        assert "stage fold failed" in first.reason
        log = (tmp_path / "logs" / "tracking-1.log").read_text()
        assert "chaos supervisor: exited with 3, restarting" in log
    finally:
        await pipeline.stop()


async def test_retired_instances_and_a_stopping_pipeline_are_not_restarted(
    tmp_path: Path,
) -> None:
    pipeline = _Pipeline("127.0.0.1:1", "t.", tmp_path)
    pipeline.exit_code = None  # long-running
    pipeline._supervisor = asyncio.create_task(pipeline._supervise_forever())
    try:
        staying = pipeline.add("tracking")
        leaving = pipeline.add("tracking")
        await pipeline.remove(leaving, within=5)  # scale-in: SIGTERM, not a crash
        await asyncio.sleep(1.5)
        assert pipeline.restarts == []
        assert pipeline.instances["tracking"] == [staying]
    finally:
        await pipeline.stop()
    assert staying.process is not None and staying.process.poll() is not None
    await asyncio.sleep(1.0)
    assert staying.process.poll() is not None  # nothing came back after stop()
    assert pipeline.restarts == []


def test_restarts_show_in_the_verdict_but_do_not_fail_it() -> None:
    from collections import Counter

    from chaos.harness import Restart

    verdict = Verdict("f", 10, 10, Counter(), [], [], [], 12.0)
    verdict.restarts = [
        Restart("tracking-1", 1, "stage fold failed", 0.0),
        Restart("tracking-1", 1, "stage fold failed", 1.0),
        Restart("tender_responder", 1, "CommitFailedError", 2.0),
    ]
    assert verdict.ok
    assert verdict.row()[-1] == "3 (tender_responder, tracking-1 x2)"
    verdict.missing.append("scan x of s")
    assert not verdict.ok


@pytest.mark.parametrize("code", [0, 1])
async def test_any_exit_of_its_own_counts_even_a_clean_one(tmp_path: Path, code: int) -> None:
    pipeline = _Pipeline("127.0.0.1:1", "t.", tmp_path)
    pipeline.exit_code = code
    pipeline._supervisor = asyncio.create_task(pipeline._supervise_forever())
    try:
        pipeline.add("order_intake")
        await _until(lambda: len(pipeline.restarts) >= 1)
        assert pipeline.restarts[0].exit_code == code
    finally:
        await pipeline.stop()


def test_instance_ports_come_from_below_the_ephemeral_range_and_never_twice() -> None:
    """An outgoing connection (every Kafka client opens several) takes its local port from
    the ephemeral range; a port picked there could be gone before the service binds it."""
    low, high = map(int, Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    picks = [harness.free_port() for _ in range(50)]
    assert len(set(picks)) == len(picks)
    assert all(p in harness.HTTP_PORTS and not low <= p <= high for p in picks)


def test_a_port_in_use_is_not_handed_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        taken = busy.getsockname()[1]
        offered = iter([taken, taken, 20_001])
        monkeypatch.setattr(random, "choice", lambda _: next(offered))
        monkeypatch.setattr(harness, "_handed_out", set())
        assert harness.free_port() == 20_001


def test_a_failed_verdict_quotes_only_the_membership_lines_logged_during_it(
    tmp_path: Path,
) -> None:
    pipeline = Pipeline("127.0.0.1:1", "t.", tmp_path)
    pipeline.logs.mkdir(parents=True)
    before = '{"event": "revoked after the group dropped this member", "partitions": [1]}\n'
    (pipeline.logs / "tracking-1.log").write_text(before)
    marks = pipeline.log_marks()
    with (pipeline.logs / "tracking-1.log").open("a") as log:
        log.write("Heartbeat failed for group g because it is rebalancing\n")
        log.write('{"event": "revoked after the group dropped this member", "partitions": [2]}\n')
    (pipeline.logs / "rate_shopping-2.log").write_text(
        "Heartbeat failed: local member_id was not recognized; resetting and re-joining group\n"
    )

    lines = pipeline.membership_lines(marks)

    assert lines == [
        "rate_shopping-2: Heartbeat failed: local member_id was not recognized; resetting "
        "and re-joining group",
        'tracking-1: {"event": "revoked after the group dropped this member", "partitions": [2]}',
    ]
    verdict = Verdict("scale", 1, 0, Counter(), [], [], [], None, membership=lines)
    assert "instance log lines on membership and restores (2):" in verdict.explain()
