"""Handoff's control tower: a live operations view over the public topics and every service's metrics.

It is read-only: it follows `handoff.shipments.state.v1` and `handoff.tracking.kpis.v1`
from the beginning, scrapes each service's `/metrics`, and serves a web page plus
JSON endpoints. It never writes to Kafka.
"""
