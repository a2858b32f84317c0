"""`make test-later`'s clock shift: the wall clock moves the asked number of days, once, and
monotonic time does not move; without the variable nothing moves."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HOOK_DIR = Path(__file__).resolve().parents[1] / "support" / "clock_shift"
# The hook may already have run at start-up (installed by `make test-later`); calling it
# again must not move the clock further. time_machine's escape hatch reads the real clocks.
PROBE = """
import json, time
from time_machine import escape_hatch
import handoff_clock_shift
handoff_clock_shift.travel()
handoff_clock_shift.travel()
real = escape_hatch.time.time() if escape_hatch.is_travelling() else time.time()
print(json.dumps({"wall": time.time() - real, "mono": time.monotonic()}))
"""


def _shift(days: str | None) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "HANDOFF_TEST_DAYS_LATER"}
    env["PYTHONPATH"] = str(HOOK_DIR)
    if days is not None:
        env["HANDOFF_TEST_DAYS_LATER"] = days
    before = time.monotonic()
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    ).stdout
    after = time.monotonic()
    result: dict[str, float] = json.loads(out)
    # One system-wide monotonic clock: the child's reading lies between the parent's two.
    result["mono_in_between"] = float(before <= result["mono"] <= after)
    return result


def test_the_wall_clock_moves_the_asked_days_once_and_monotonic_time_stays() -> None:
    moved = _shift("10")
    assert abs(moved["wall"] - 10 * 86_400) < 60
    assert moved["mono_in_between"]


def test_without_the_variable_nothing_moves() -> None:
    assert abs(_shift(None)["wall"]) < 60
