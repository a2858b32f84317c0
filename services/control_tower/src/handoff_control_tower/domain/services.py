"""Service health from Prometheus scrapes (pure): throughput, consumer lag, dead letters.

A scrape is the text exposition of one service's `/metrics`, parsed by
`prometheus_client`'s own parser into a `Scrape` (the few series the tower
shows). `ServiceHistory` turns successive scrapes into rates: records/s is the
increase of `handoff_records_processed_total` between two scrapes over the time
between them; a counter that went down means the service restarted, and (as in
Prometheus' `rate()`) the new value is then the increase since the restart.
Time is always a parameter: the adapter passes the moment it scraped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

RECORDS = "handoff_records_processed_total"
EMITTED = "handoff_records_emitted_total"
LAG = "handoff_consumer_lag"
DLQ = "handoff_dlq_records_total"
BATCH_SECONDS = "handoff_batch_seconds"
READY = "handoff_ready"


@dataclass(frozen=True, slots=True)
class Scrape:
    """The series of one scrape that the tower shows, summed over labels it does not."""

    records_total: float = 0.0
    emitted_total: float = 0.0
    dlq_total: float = 0.0
    lag_by_stage: dict[str, float] = field(default_factory=dict)
    batch_seconds_sum: float = 0.0
    batch_count: float = 0.0
    ready: bool | None = None

    @property
    def lag_total(self) -> float:
        return sum(self.lag_by_stage.values())


def parse_scrape(text: str) -> Scrape:
    """Pick Handoff's series out of a Prometheus text exposition. Raises ValueError on garbage."""
    records = emitted = dlq = batch_sum = batch_count = 0.0
    lag: dict[str, float] = {}
    ready: bool | None = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, float(sample.value)
            if name == RECORDS:
                records += value
            elif name == EMITTED:
                emitted += value
            elif name == DLQ:
                dlq += value
            elif name == LAG:
                stage = labels.get("stage", "main")
                lag[stage] = lag.get(stage, 0.0) + max(value, 0.0)
            elif name == f"{BATCH_SECONDS}_sum":
                batch_sum += value
            elif name == f"{BATCH_SECONDS}_count":
                batch_count += value
            elif name == READY:
                ready = value >= 1.0
    return Scrape(
        records_total=records,
        emitted_total=emitted,
        dlq_total=dlq,
        lag_by_stage=lag,
        batch_seconds_sum=batch_sum,
        batch_count=batch_count,
        ready=ready,
    )


def increase(before: float, after: float) -> float:
    """Counter increase between two samples; a drop means a restart (counting from zero)."""
    return after - before if after >= before else after


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    records_per_s: float
    lag: float


@dataclass(slots=True)
class ServiceHistory:
    """One service's recent scrapes: the latest sample and a bounded series of rates."""

    name: str
    url: str
    max_points: int = 150
    last: Scrape | None = None
    last_at: datetime | None = None
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    records_per_s: float = 0.0
    batch_ms: float | None = None
    points: deque[Point] = field(default_factory=deque)

    @property
    def up(self) -> bool:
        return self.last_error is None and self.last is not None

    def observe(self, scrape: Scrape, at: datetime) -> None:
        """A successful scrape at `at`."""
        previous, previous_at = self.last, self.last_at
        self.last, self.last_at, self.last_attempt_at, self.last_error = scrape, at, at, None
        if previous is None or previous_at is None or at <= previous_at:
            # One sample is no rate: no point either, or the chart would start with a false 0.
            self.records_per_s = 0.0
            return
        seconds = (at - previous_at).total_seconds()
        self.records_per_s = increase(previous.records_total, scrape.records_total) / seconds
        batches = increase(previous.batch_count, scrape.batch_count)
        if batches > 0:
            spent = increase(previous.batch_seconds_sum, scrape.batch_seconds_sum)
            self.batch_ms = 1000.0 * spent / batches
        self.points.append(Point(at, self.records_per_s, scrape.lag_total))
        while len(self.points) > self.max_points:
            self.points.popleft()

    def failed(self, error: str, at: datetime) -> None:
        """A scrape that did not answer: the service shows as down until the next one answers."""
        self.last_error, self.last_attempt_at = error, at
        self.records_per_s = 0.0


def parse_service_urls(spec: str, defaults: dict[str, str]) -> dict[str, str]:
    """`name=url,name2=url2` (HANDOFF_SERVICE_URLS): exactly the services to scrape.

    An empty spec means `defaults` (every service on its local port).
    """
    if not spec.strip():
        return dict(defaults)
    urls: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, url = item.partition("=")
        if not sep or not name.strip() or not url.strip().startswith(("http://", "https://")):
            raise ValueError(f"HANDOFF_SERVICE_URLS entry {item!r} is not name=http(s)://host:port")
        urls[name.strip()] = url.strip().rstrip("/")
    return urls
