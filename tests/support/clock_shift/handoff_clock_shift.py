"""Every Python process of a test run, some days later (``make test-later``).

Fixtures with fixed dates meet clocks that do not stand still: the tracking fold flags a
shipment stuck 48 h after its last scan and late once the wall clock passes its promise, so
a test that feeds a stage fixed-date events and lets it read the wall clock passes until
the day the real date overtakes its fixtures, then fails on every run. ``make test-later``
runs the suite with the wall clock of every Python process ``HANDOFF_TEST_DAYS_LATER`` days
ahead, so such a test fails today instead of on a Monday in a month.

How: ``python tests/support/clock_shift/handoff_clock_shift.py install`` puts a ``.pth``
hook into the virtual environment, so every interpreter it starts (pytest, the services
the tests spawn, ``python -m`` subprocesses whatever their ``PYTHONPATH``) imports this
module at start-up. Without ``HANDOFF_TEST_DAYS_LATER`` the import does nothing. With it,
``time_machine`` moves ``time.time()``, ``datetime.now()`` and their kin that many days
ahead and lets them tick; monotonic clocks (timeouts, asyncio) keep real time, and so do
the Kafka brokers (JVMs) and kcat, which are not Python. The brokers accept the clients'
record timestamps from the future because the test fixtures raise
``log.message.timestamp.after.max.ms`` (``tests/support/kafka.py``).
"""

from __future__ import annotations

# Every interpreter of the venv imports this at start: nothing here but `os` (typing,
# functools or pathlib would add 5-15 ms to each start); install() imports the rest.
import os

DAYS_ENV = "HANDOFF_TEST_DAYS_LATER"
HOOK = "handoff_clock_shift.pth"


def days_later() -> float | None:
    """The shift in days, or None when this is an ordinary run."""
    raw = os.environ.get(DAYS_ENV, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise SystemExit(f"{DAYS_ENV}={raw!r} is not a number of days") from None


_started: list[bool] = []


def travel() -> None:
    """Start the shift, once per process (a venv's site-packages can be read twice, through
    its lib64 link, and the hook would run twice: twice as far)."""
    days = days_later()
    if days is None or _started:
        return
    _started.append(True)
    from datetime import UTC, datetime, timedelta

    import time_machine

    time_machine.travel(datetime.now(UTC) + timedelta(days=days), tick=True).start()


def install() -> str:
    """Write the start-up hook into this interpreter's site-packages; return its path."""
    import sysconfig
    from pathlib import Path

    site = Path(sysconfig.get_paths()["purelib"])
    hook = site / HOOK
    here = Path(__file__).resolve().parent
    hook.write_text(f"{here}\nimport handoff_clock_shift; handoff_clock_shift.travel()\n")
    return str(hook)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["install"]:
        raise SystemExit(f"usage: {os.path.basename(__file__)} install")
    print(f"clock-shift hook: {install()}")
