"""Where a carrier's price comes from: its rate card in the catalogue, or its own quoting API.

Both adapters answer the same question for one carrier and one shipment: the
price of each eligible service (planned by the domain), or why the carrier
could not be priced. `HttpQuoteAdapter` bounds what a slow carrier can cost:
a per-attempt timeout, a number of attempts, a total budget, and a circuit
breaker. A carrier that does not answer in time is reported as ineligible
with reason `carrier_timeout` (or `circuit_open` while the breaker is open);
it never holds up the shipment's quote beyond the budget.

The quoting API protocol (JSON over HTTP POST to the configured URL):

request   {"shipment_id", "origin": {"location_id", "country", "postal_code"},
           "destination": {"country", "postal_code"},
           "parcels": [{"parcel_id", "weight_g", "length_mm", "width_mm", "height_mm"}],
           "requirements": {...}, "services": [{"service", "zone", "billable_weight_g"}]}
response  {"prices": [{"service", "currency", "base", "tax",
                       "surcharges": [{"code", "amount"}]}]}   # integer minor units
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Protocol

import httpx
import msgspec
from handoff_events.contracts import ShipmentRequested

from handoff_rate_shopping.adapters.circuit_breaker import CircuitBreaker
from handoff_rate_shopping.domain.catalogue import Carrier, QuoteApi
from handoff_rate_shopping.domain.pricing import PricedShipment, PriceLine, shipment_weights
from handoff_rate_shopping.domain.rating import ServicePlan, rate_card_price


@dataclass(frozen=True, slots=True)
class PriceUnavailable:
    """Why a carrier could not be priced: a stable reason code and words for people."""

    code: str
    message: str


Prices = dict[str, PricedShipment]


class CarrierPricing(Protocol):
    async def price(
        self, plans: Sequence[ServicePlan], shipment: ShipmentRequested
    ) -> Prices | PriceUnavailable: ...


class RateCardAdapter:
    """Prices from the catalogue's rate card (pure, instant)."""

    async def price(
        self, plans: Sequence[ServicePlan], shipment: ShipmentRequested
    ) -> Prices | PriceUnavailable:
        return {plan.service.code: rate_card_price(plan, shipment) for plan in plans}


NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class _Line(msgspec.Struct, frozen=True):
    code: str
    amount: NonNegative


class _Price(msgspec.Struct, frozen=True):
    service: str
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")]
    base: NonNegative
    tax: NonNegative
    surcharges: list[_Line] = []


class _Answer(msgspec.Struct, frozen=True):
    prices: list[_Price]


_answer_decoder = msgspec.json.Decoder(_Answer)
_encoder = msgspec.json.Encoder()


class _Retryable(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


class HttpQuoteAdapter:
    """A carrier's own quoting API, bounded by timeout, attempts, budget and a circuit breaker."""

    def __init__(
        self,
        carrier: Carrier,
        client: httpx.AsyncClient,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if carrier.quote_api is None:
            raise ValueError(f"{carrier.code} has no quote_api in the catalogue")
        self.carrier = carrier
        self.api: QuoteApi = carrier.quote_api
        self.client = client
        self.clock = clock
        self.breaker = breaker or CircuitBreaker(
            self.api.failure_threshold, self.api.open_for_s, clock
        )

    def _request(self, plans: Sequence[ServicePlan], shipment: ShipmentRequested) -> bytes:
        origin, dest = shipment.origin, shipment.destination
        return _encoder.encode(
            {
                "shipment_id": shipment.shipment_id,
                "origin": {
                    "location_id": origin.location_id,
                    "country": origin.country,
                    "postal_code": origin.postal_code,
                },
                "destination": {"country": dest.country, "postal_code": dest.postal_code},
                "parcels": [
                    {
                        "parcel_id": p.parcel_id,
                        "weight_g": p.weight_g,
                        "length_mm": p.length_mm,
                        "width_mm": p.width_mm,
                        "height_mm": p.height_mm,
                    }
                    for p in shipment.parcels
                ],
                "requirements": shipment.requirements,
                "services": [{"service": p.service.code, "zone": p.zone} for p in plans],
            }
        )

    async def price(
        self, plans: Sequence[ServicePlan], shipment: ShipmentRequested
    ) -> Prices | PriceUnavailable:
        if not self.breaker.allow():
            return PriceUnavailable(
                "circuit_open", f"{self.carrier.code} quoting API is failing; not asked"
            )
        body = self._request(plans, shipment)
        deadline = self.clock() + self.api.budget_s
        last = PriceUnavailable("carrier_timeout", f"{self.carrier.code} did not answer in time")
        for _ in range(self.api.attempts):
            remaining = deadline - self.clock()
            if remaining <= 0:
                break
            try:
                answer = await self._attempt(body, min(self.api.timeout_s, remaining))
            except _Retryable as exc:
                last = PriceUnavailable(exc.code, exc.message)
                continue
            except (msgspec.ValidationError, msgspec.DecodeError) as exc:
                self.breaker.record_failure()
                return PriceUnavailable("carrier_invalid_response", f"{self.carrier.code}: {exc}")
            except httpx.HTTPStatusError as exc:
                # A 4xx is the carrier refusing this shipment, not an outage: no retry.
                self.breaker.record_success()
                return PriceUnavailable(
                    "carrier_refused", f"{self.carrier.code} answered {exc.response.status_code}"
                )
            self.breaker.record_success()
            foreign = sorted({p.currency for p in answer.prices} - {self.carrier.currency})
            if foreign:
                # Quotes are compared across carriers: a price in another currency is unusable.
                return PriceUnavailable(
                    "carrier_invalid_response",
                    f"{self.carrier.code} priced in {', '.join(foreign)}, catalogue says "
                    f"{self.carrier.currency}",
                )
            return self._prices(plans, answer, shipment)
        self.breaker.record_failure()
        return last

    async def _attempt(self, body: bytes, timeout_s: float) -> _Answer:
        try:
            async with asyncio.timeout(timeout_s):
                response = await self.client.post(
                    self.api.url,
                    content=body,
                    headers={"content-type": "application/json"},
                    timeout=httpx.Timeout(timeout_s),
                )
        except (TimeoutError, httpx.TimeoutException):
            raise _Retryable(
                "carrier_timeout", f"{self.carrier.code} did not answer within {timeout_s:.2f} s"
            ) from None
        except httpx.TransportError as exc:
            raise _Retryable(
                "carrier_unavailable", f"{self.carrier.code}: {type(exc).__name__}"
            ) from None
        if response.status_code >= 500:
            raise _Retryable(
                "carrier_unavailable", f"{self.carrier.code} answered {response.status_code}"
            )
        response.raise_for_status()
        return _answer_decoder.decode(response.content)

    def _prices(
        self, plans: Sequence[ServicePlan], answer: _Answer, shipment: ShipmentRequested
    ) -> Prices:
        # Weights are ours (the catalogue's divisor): the carrier's API only prices.
        actual, dimensional, billable = shipment_weights(
            shipment.parcels, self.carrier.dimensional_divisor
        )
        by_service = {p.service: p for p in answer.prices}
        out: Prices = {}
        for plan in plans:
            price = by_service.get(plan.service.code)
            if price is None:
                continue
            out[plan.service.code] = PricedShipment(
                currency=price.currency,
                base=price.base,
                surcharges=tuple(PriceLine(line.code, line.amount) for line in price.surcharges),
                tax=price.tax,
                actual_weight_g=actual,
                dimensional_weight_g=dimensional,
                billable_weight_g=billable,
            )
        return out
