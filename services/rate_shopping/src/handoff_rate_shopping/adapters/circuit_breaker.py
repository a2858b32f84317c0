"""A circuit breaker for one carrier's quoting API: a pure state machine with an injected clock.

closed     calls go through; `failure_threshold` consecutive failures open it.
open       calls are refused (the carrier is left out of quotes as `circuit_open`)
           until `open_for_s` has passed since it opened.
half_open  one probe call is let through; success closes the circuit, failure
           opens it again for another `open_for_s`.

Why: a carrier API that is down must cost a shipment nothing, not a timeout
per shipment; the probe finds out cheaply when it is back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 3,
        open_for_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        if failure_threshold < 1 or open_for_s <= 0:
            raise ValueError("failure_threshold ≥ 1 and open_for_s > 0 are required")
        self.failure_threshold = failure_threshold
        self.open_for_s = open_for_s
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self.open_for_s:
            return "half_open"
        return "open"

    def allow(self) -> bool:
        """May a call go out now? In half-open, only one probe at a time."""
        state = self.state
        if state == "closed":
            return True
        if state == "open" or self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def record_success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probe_in_flight = False

    def record_failure(self) -> None:
        if self._opened_at is not None:  # a failed probe (or a late failure while open): reopen
            self._opened_at = self._clock()
            self._probe_in_flight = False
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._opened_at = self._clock()
