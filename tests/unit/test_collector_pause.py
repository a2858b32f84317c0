"""The engine pauses the cyclic garbage collector while tasks restore, and freezes what
they filed afterwards (`engine._CollectorPause`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from handoff_events.stream.engine import _CollectorPause


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    gc.unfreeze()
    if enabled:
        gc.enable()
    else:  # pragma: no cover - the suite runs with the collector on
        gc.disable()


def test_paused_while_any_restore_runs_then_frozen_and_resumed() -> None:
    gc.enable()
    gc.unfreeze()
    pause = _CollectorPause()
    with pause():
        assert not gc.isenabled()
        with pause():  # a second task restoring side by side
            assert not gc.isenabled()
        assert not gc.isenabled()  # the first is still restoring
        filed = [{"state": i} for i in range(1000)]
        frozen_before = gc.get_freeze_count()
    assert gc.isenabled()
    assert gc.get_freeze_count() >= frozen_before + len(filed)


def test_a_collector_switched_off_by_the_operator_stays_off() -> None:
    gc.disable()
    pause = _CollectorPause()
    with pause():
        assert not gc.isenabled()
    assert not gc.isenabled()


def test_an_error_in_the_restore_still_resumes_the_collector() -> None:
    gc.enable()
    pause = _CollectorPause()
    with pytest.raises(RuntimeError), pause():
        raise RuntimeError("broker went away mid-restore")
    assert gc.isenabled()
