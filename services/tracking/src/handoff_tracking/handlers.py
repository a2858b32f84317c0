"""Tracking's stream stages after the ingress: the shipment fold and the KPI aggregation.

fold  (inputs: every shipment-keyed lifecycle topic + observations; store: ShipmentState,
       changelog = the public state topic)
      envelope -> domain.fold -> store, ShipmentUpdates, TrackingNumberAssigned,
      KpiContributions; a timer folds in time-based exceptions (stuck, late).
kpis  (input: kpi-contributions, keyed by KPI bucket; store: KpiBucket)
      contribution -> bucket -> KpiSnapshot; a timer refreshes the Prometheus gauges.

Handlers are deterministic in (store, event, ctx.now): every emitted id derives
from the shipment and the cause, so a batch retried after a crash emits the
same ids.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import datetime
from typing import Any

from handoff_events import topics
from handoff_events.contracts import (
    TERMINAL_STATUSES,
    UPDATE_TYPES,
    CarrierAllocated,
    Event,
    KpiContribution,
    ShipmentState,
    TrackingNumberAssigned,
    TrackingObserved,
)
from handoff_events.envelope import Envelope, new_envelope
from handoff_events.ids import event_id
from handoff_events.stream.api import Context, MsgpackCodec, Rejected, StatefulProcessor

from handoff_tracking import metrics
from handoff_tracking.adapters.state_codec import SOURCE, ShipmentStateCodec
from handoff_tracking.domain import kpis
from handoff_tracking.domain.exceptions import ExceptionPolicy, detect, next_check
from handoff_tracking.domain.fold import (
    FOLD_EVENT_TYPES,
    FoldInput,
    Milestone,
    TenantMismatch,
    fold,
    remember_at_most,
)
from handoff_tracking.domain.updates import shipment_update

FOLD_INPUTS = (
    topics.INTAKE_SHIPMENTS,
    topics.QUOTES,
    topics.ALLOCATIONS,
    topics.OBSERVATIONS,
    topics.NOTIFICATION_OUTCOMES,
    topics.RETURNS,
    topics.RETURN_SHIPMENTS,
)


class FoldStage:
    """The fold stage's handler and timer, with the exception policy they share."""

    def __init__(self, policy: ExceptionPolicy):
        self.policy = policy

    def handle(self, envelope: Envelope[Event], ctx: Context[ShipmentState]) -> None:
        data = envelope.data
        if not isinstance(data, FOLD_EVENT_TYPES):
            raise Rejected(
                "unexpected_type", "not an event the fold takes", "ce_type", envelope.type
            )
        shipment_id: str = data.shipment_id
        if ctx.key is not None and ctx.key != shipment_id:
            # A mis-keyed record would be folded on the wrong partition's store.
            raise Rejected("wrong_key", "record key is not the shipment id", "key", ctx.key)
        state = ctx.store.get(shipment_id)
        event = FoldInput(
            event_id=envelope.id,
            tenant_id=envelope.tenant_id,
            event=data,
            recorded_at=envelope.time,
        )
        try:
            new, milestones = fold(state, event)
        except TenantMismatch as err:
            raise Rejected("tenant_mismatch", str(err), "ce_tenantid", envelope.tenant_id) from None
        if new is state:
            return
        self._record(ctx, state, new, milestones)
        if isinstance(data, CarrierAllocated):
            self._assign_tracking_number(ctx, envelope.id, envelope.tenant_id, data)
        if isinstance(data, TrackingObserved) and data.status == "unknown":
            metrics.UNKNOWN_OBSERVATIONS.labels(data.carrier).inc()

    def next_check(self, state: ShipmentState) -> datetime | None:
        return next_check(state, self.policy)

    def punctuate(self, ctx: Context[ShipmentState]) -> None:
        """Fold in what the clock reveals: stuck shipments, promises passed. Only the states
        whose next check (`exceptions.next_check`) has come are handed over."""
        for _, state in ctx.due():
            if state.status in TERMINAL_STATUSES:
                continue
            current = state
            for found in detect(current, ctx.now, self.policy):
                new, milestones = fold(current, found)
                if new is not current:
                    self._record(ctx, current, new, milestones)
                    current = new

    def _record(
        self,
        ctx: Context[ShipmentState],
        old: ShipmentState | None,
        new: ShipmentState,
        milestones: list[Milestone],
    ) -> None:
        ctx.store.put(new.shipment_id, new)
        for milestone in milestones:
            update = shipment_update(new, milestone)
            ctx.emit(
                topics.UPDATES,
                new.shipment_id,
                new_envelope(
                    update,
                    source=SOURCE,
                    tenant_id=new.tenant_id,
                    id=milestone.update_id,
                    type=UPDATE_TYPES[milestone.milestone],
                    time=milestone.cause.occurred_at,
                ),
            )
            _updates_counter(milestone.milestone).inc()
            if milestone.exception is not None:
                metrics.EXCEPTIONS.labels(
                    milestone.exception.kind, new.carrier or "none", new.tenant_id
                ).inc()
        self._contribute(ctx, old, new)

    def _contribute(
        self, ctx: Context[ShipmentState], old: ShipmentState | None, new: ShipmentState
    ) -> None:
        """Send the shipment's KPI figures when they change (and withdraw them from a
        bucket they no longer belong to)."""
        before = kpis.contribution(old) if old is not None else None
        after = kpis.contribution(new)
        if before == after:
            return
        if before is not None and (after is None or after.kpi_key != before.kpi_key):
            retract = KpiContribution(**{**_fields(before), "retract": True})
            self._emit_contribution(ctx, retract, new.version)
        if after is not None:
            self._emit_contribution(ctx, after, new.version)

    @staticmethod
    def _emit_contribution(
        ctx: Context[ShipmentState], item: KpiContribution, version: int
    ) -> None:
        ctx.emit(
            topics.KPI_CONTRIBUTIONS,
            item.kpi_key,
            new_envelope(
                item,
                source=SOURCE,
                tenant_id=item.tenant_id,
                id=event_id(item.ce_type, item.shipment_id, item.kpi_key, version, item.retract),
                time=item.contributed_at,
            ),
        )

    @staticmethod
    def _assign_tracking_number(
        ctx: Context[ShipmentState], cause: str, tenant_id: str, allocated: CarrierAllocated
    ) -> None:
        row = TrackingNumberAssigned(
            carrier=allocated.carrier,
            tracking_number=allocated.tracking_number,
            shipment_id=allocated.shipment_id,
            assigned_at=allocated.allocated_at,
        )
        ctx.emit(
            topics.TRACKING_NUMBERS,
            f"{allocated.carrier}/{allocated.tracking_number}",
            new_envelope(
                row, source=SOURCE, tenant_id=tenant_id, caused_by=cause, time=row.assigned_at
            ),
        )


@functools.cache
def _updates_counter(milestone: str) -> Any:
    """The UPDATES child of one milestone (`labels` takes a lock and checks the labels;
    milestones are a closed set, UPDATE_TYPES)."""
    return metrics.UPDATES.labels(milestone)


def _fields(item: KpiContribution) -> dict[str, Any]:
    return {name: getattr(item, name) for name in item.__struct_fields__}


def build_fold(
    policy: ExceptionPolicy, check_every_s: float = 60.0, remember: int = 0
) -> StatefulProcessor[ShipmentState]:
    """The fold stage. `remember`: how many shipments' derivations the fold keeps
    (`remember_at_most`), the store's bound in a service."""
    remember_at_most(remember)
    stage = FoldStage(policy)
    return StatefulProcessor(
        service="tracking",
        stage="fold",
        inputs=list(FOLD_INPUTS),
        changelog=topics.STATE,
        codec=ShipmentStateCodec(),
        handle=stage.handle,
        punctuate=stage.punctuate,
        punctuate_every_s=check_every_s,
        due=stage.next_check,
    )


# ---- KPIs ---------------------------------------------------------------------------
def handle_kpi(envelope: Envelope[Event], ctx: Context[kpis.KpiBucket]) -> None:
    item = envelope.data
    if not isinstance(item, KpiContribution):
        raise Rejected("unexpected_type", "not a KPI contribution", "ce_type", envelope.type)
    bucket = ctx.store.get(item.kpi_key)
    updated = kpis.apply(bucket, item)
    if updated == bucket:
        return
    ctx.store.put(item.kpi_key, updated)
    snapshot = kpis.snapshot(updated, like=item)
    ctx.emit(
        topics.KPIS,
        item.kpi_key,
        new_envelope(
            snapshot,
            source=SOURCE,
            tenant_id=item.tenant_id,
            caused_by=envelope.id,
            time=snapshot.computed_at,
        ),
    )


def refresh_kpi_gauges(ctx: Context[kpis.KpiBucket]) -> None:
    """Per (carrier, tenant) totals over the buckets this instance owns."""
    totals: dict[tuple[str, str], list[KpiContribution]] = defaultdict(list)
    for _, bucket in ctx.store.items():
        for item in bucket.contributions.values():
            totals[(item.carrier, item.tenant_id)].append(item)
    gauges = (
        metrics.DELIVERED,
        metrics.DELIVERED_ON_TIME,
        metrics.PROMISED,
        metrics.FIRST_ATTEMPT,
        metrics.WITH_EXCEPTION,
        metrics.ON_TIME_RATE,
        metrics.FIRST_ATTEMPT_RATE,
        metrics.EXCEPTION_RATE,
        metrics.TRANSIT_AVG,
        metrics.TRANSIT_P90,
        metrics.COST_PER_DELIVERY,
    )
    for gauge in gauges:
        gauge.clear()
    for (carrier, tenant), items in totals.items():
        fig = kpis.figures(items)
        rates = fig.rates()
        labels = (carrier, tenant)
        metrics.DELIVERED.labels(*labels).set(fig.delivered)
        metrics.DELIVERED_ON_TIME.labels(*labels).set(fig.on_time)
        metrics.PROMISED.labels(*labels).set(fig.promised)
        metrics.FIRST_ATTEMPT.labels(*labels).set(fig.first_attempt)
        metrics.WITH_EXCEPTION.labels(*labels).set(fig.with_exception)
        for gauge, value in (
            (metrics.ON_TIME_RATE, "on_time_rate"),
            (metrics.FIRST_ATTEMPT_RATE, "first_attempt_success_rate"),
            (metrics.EXCEPTION_RATE, "exception_rate"),
            (metrics.TRANSIT_AVG, "transit_hours_avg"),
            (metrics.TRANSIT_P90, "transit_hours_p90"),
            (metrics.COST_PER_DELIVERY, "cost_per_delivery_minor"),
        ):
            figure = rates[value]
            if figure is not None:
                gauge.labels(*labels).set(figure)


def build_kpis(refresh_every_s: float = 15.0) -> StatefulProcessor[kpis.KpiBucket]:
    return StatefulProcessor(
        service="tracking",
        stage="kpis",
        inputs=[topics.KPI_CONTRIBUTIONS],
        changelog=topics.KPIS_CHANGELOG,
        codec=MsgpackCodec(kpis.KpiBucket),
        handle=handle_kpi,
        punctuate=refresh_kpi_gauges,
        punctuate_every_s=refresh_every_s,
    )
