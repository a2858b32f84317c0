"""The rate-shopping use case: one shipment request in, one RatesQuoted or RatingFailed out.

This module owns the orchestration around the pure domain: plan every
carrier from the catalogue, ask each eligible carrier's price source (rate
card or quoting API) concurrently, and fold the answers into the event.
A carrier whose price source fails is listed as ineligible with the reason
(`carrier_timeout`, `circuit_open`, …); the shipment is still quoted by the
others, and gets `RatingFailed` only when nobody can carry it.

Both the stream handler and the HTTP endpoint call `Quoter.quote`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime

from handoff_events.contracts import (
    IneligibleCarrier,
    Quote,
    RatesQuoted,
    RatingFailed,
    ShipmentRequested,
)
from handoff_events.values import Reason

from handoff_rate_shopping.adapters.carriers import (
    CarrierPricing,
    PriceUnavailable,
    RateCardAdapter,
)
from handoff_rate_shopping.domain.catalogue import Catalogue
from handoff_rate_shopping.domain.rating import (
    CarrierPlan,
    check_request,
    plan_carrier,
    quote_of,
    sort_quotes,
)
from handoff_rate_shopping.domain.transit_history import TransitHistory


class Quoter:
    def __init__(
        self,
        catalogue: Catalogue,
        history: TransitHistory,
        pricing: Mapping[str, CarrierPricing] | None = None,
    ):
        """`pricing` maps carrier code → price source; carriers not in it use their rate card."""
        self.catalogue = catalogue
        self.history = history
        self.pricing = dict(pricing or {})
        self._rate_card = RateCardAdapter()

    async def _carrier(
        self, carrier_plan: CarrierPlan, shipment: ShipmentRequested
    ) -> tuple[list[Quote], list[IneligibleCarrier]]:
        ineligible = list(carrier_plan.ineligible)
        if not carrier_plan.plans:
            return [], ineligible
        code = carrier_plan.carrier.code
        source = self.pricing.get(code, self._rate_card)
        answer = await source.price(carrier_plan.plans, shipment)
        if isinstance(answer, PriceUnavailable):
            reason = Reason(code=answer.code, message=answer.message)
            return [], [
                *ineligible,
                IneligibleCarrier(carrier=code, service=None, reasons=[reason]),
            ]
        quotes = []
        for plan in carrier_plan.plans:
            price = answer.get(plan.service.code)
            if price is None:
                ineligible.append(
                    IneligibleCarrier(
                        carrier=code,
                        service=plan.service.code,
                        reasons=[
                            Reason(
                                code="not_priced_by_carrier",
                                message="the carrier's API gave no price",
                            )
                        ],
                    )
                )
                continue
            quotes.append(quote_of(plan, price, shipment.shipment_id))
        return quotes, ineligible

    async def quote(self, shipment: ShipmentRequested, now: datetime) -> RatesQuoted | RatingFailed:
        if not shipment.parcels:
            return RatingFailed(
                shipment_id=shipment.shipment_id,
                order_id=shipment.order_id,
                failed_at=now,
                reasons=[Reason(code="no_parcels", field="$.parcels", message="nothing to ship")],
            )
        check_request(shipment)  # raises InvalidRequest: the caller decides (DLQ, 422)
        plans = [
            plan_carrier(carrier, shipment, self.history) for carrier in self.catalogue.carriers
        ]
        answers = await asyncio.gather(*(self._carrier(plan, shipment) for plan in plans))
        quotes = [q for carrier_quotes, _ in answers for q in carrier_quotes]
        ineligible = [i for _, carrier_ineligible in answers for i in carrier_ineligible]
        if not quotes:
            return RatingFailed(
                shipment_id=shipment.shipment_id,
                order_id=shipment.order_id,
                failed_at=now,
                reasons=[
                    Reason(
                        code="no_eligible_carrier",
                        message=f"none of {len(plans)} carriers can carry it; see `ineligible`",
                    )
                ],
                ineligible=ineligible,
            )
        return RatesQuoted(
            shipment_id=shipment.shipment_id,
            order_id=shipment.order_id,
            quoted_at=now,
            quotes=list(sort_quotes(quotes)),
            ineligible=ineligible,
        )
