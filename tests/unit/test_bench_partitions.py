"""The benchmarks' partition count: 12 unless HANDOFF_BENCH_PARTITIONS says otherwise, and
recorded with the results."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bench.common import machine_facts
from bench.run import markdown

REPO = Path(__file__).resolve().parents[2]


def _partitions_with(value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HANDOFF_BENCH_PARTITIONS"}
    if value is not None:
        env["HANDOFF_BENCH_PARTITIONS"] = value
    code = "import bench.common as c; print(c.PARTITIONS, c.service_env('b', 'p', c.REPO, 1)['HANDOFF_PARTITIONS'])"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_the_layout_is_the_catalogue_s_unless_overridden() -> None:
    assert _partitions_with(None) == "12 12"
    assert _partitions_with("3") == "3 3"  # the services are started with it too


def test_the_results_say_how_many_partitions() -> None:
    facts = machine_facts("4.3.1")
    assert facts["partitions"] == int(os.environ.get("HANDOFF_BENCH_PARTITIONS", "12"))
    meta = {"mode": "quick", "started": "t", "machine": facts, "load_start": [0.0],
            "load_end": [0.0], "seconds": 1.0}  # fmt: skip
    assert f"; {facts['partitions']} partitions per topic." in markdown([], meta)
