"""Tenant allocation policy as pure functions: quotes + scorecards + policy → a ranking.

A `Policy` is data (loaded from `deploy/config/allocation/policies.toml`). `rank`
splits the quotes into eligible candidates, ordered best first with a score, and
ineligible ones with every reason, and `explain` turns a ranking into words.

Ordering is a total order, so the same quotes always give the same ranking
whatever order rate shopping listed them in:

1. eligible preferred carriers first, in the policy's preference order;
2. then by the objective:
   - `cheapest_meeting_promise`: lowest total price;
   - `fastest`: earliest estimated delivery date;
   - `weighted`: highest weighted score (rounded to 6 decimals, so float noise
     never decides);
3. ties broken by: lower price, earlier delivery date, higher on-time
   probability, carrier code, service name, quote id (alphabetical).

Scores are in [0, 1], higher is better, and are shown in every decision:
- cheapest: cheapest eligible price / this price;
- fastest: 1 / (1 + days later than the fastest eligible quote);
- weighted: Σ wᵢ·cᵢ / Σ wᵢ over cost (cheapest price / price), on-time rate,
  first-attempt success rate and (1 − exception rate) from the carrier's scorecard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from handoff_events.contracts import IneligibleCarrier, Quote
from handoff_events.values import Money, Reason, Requirements

Objective = Literal["cheapest_meeting_promise", "fastest", "weighted"]
OBJECTIVES: tuple[Objective, ...] = ("cheapest_meeting_promise", "fastest", "weighted")
SCORE_DECIMALS = 6


@dataclass(frozen=True)
class Weights:
    """Relative weights of the `weighted` objective (any non-negative numbers, not all zero)."""

    cost: float = 1.0
    on_time: float = 1.0
    first_attempt: float = 0.5
    exceptions: float = 0.5

    @property
    def total(self) -> float:
        return self.cost + self.on_time + self.first_attempt + self.exceptions


@dataclass(frozen=True)
class Policy:
    """One tenant's allocation policy."""

    policy_id: str
    objective: Objective
    min_on_time_probability: float = 0.0
    """Quotes below this on-time probability miss the target (when the promise is required)."""
    require_promise: bool = True
    """Only quotes that meet the promise are eligible (always true for cheapest_meeting_promise)."""
    allowed_carriers: frozenset[str] | None = None
    """None: every carrier is allowed."""
    excluded_carriers: frozenset[str] = frozenset()
    preferred_carriers: tuple[str, ...] = ()
    max_price: Money | None = None
    weights: Weights = field(default_factory=Weights)

    @property
    def promise_required(self) -> bool:
        return self.require_promise or self.objective == "cheapest_meeting_promise"


@dataclass(frozen=True)
class Scorecard:
    """A carrier's observed delivery performance (rates in [0, 1])."""

    carrier: str
    on_time_rate: float
    first_attempt_rate: float
    exception_rate: float
    shipments_delivered: int = 0
    basis: Literal["observed", "default"] = "default"


@dataclass(frozen=True)
class Ranked:
    """An eligible candidate with its score and rank (0 = best)."""

    quote: Quote
    score: float
    preferred: bool
    rank: int


@dataclass(frozen=True)
class Ineligible:
    carrier: str
    service: str | None
    quote_id: str | None
    total: Money | None
    reasons: tuple[Reason, ...]


@dataclass(frozen=True)
class Ranking:
    policy_id: str
    objective: Objective
    eligible: tuple[Ranked, ...]
    ineligible: tuple[Ineligible, ...]


def required_capabilities(requirements: Requirements) -> tuple[str, ...]:
    """Capability codes a quote must list for these shipment requirements."""
    needed: list[str] = []
    if requirements.signature:
        needed.append("signature")
    if requirements.min_age > 0:
        needed.append("age_check")
    if requirements.cold_chain:
        needed.append("cold_chain")
    return tuple(needed)


def _money(m: Money) -> str:
    return f"{m.amount // 100}.{m.amount % 100:02d} {m.currency}"


def eligibility_reasons(
    quote: Quote, policy: Policy, requirements: Requirements
) -> tuple[Reason, ...]:
    """Every reason this quote cannot be chosen under the policy (empty: eligible)."""
    reasons: list[Reason] = []
    carrier = quote.carrier
    if policy.allowed_carriers is not None and carrier not in policy.allowed_carriers:
        reasons.append(
            Reason(
                code="carrier_not_allowed",
                field="carrier",
                value=carrier,
                message=f"{policy.policy_id} allows only "
                + ", ".join(sorted(policy.allowed_carriers)),
            )
        )
    if carrier in policy.excluded_carriers:
        reasons.append(
            Reason(
                code="carrier_excluded",
                field="carrier",
                value=carrier,
                message=f"{policy.policy_id} excludes {carrier}",
            )
        )
    for capability in required_capabilities(requirements):
        if capability not in quote.capabilities:
            reasons.append(
                Reason(
                    code="missing_capability",
                    field="capabilities",
                    value=capability,
                    message=f"shipment requires {capability}; {carrier}/{quote.service} lacks it",
                )
            )
    total = quote.price.total
    if policy.max_price is not None:
        if total.currency != policy.max_price.currency:
            reasons.append(
                Reason(
                    code="currency_mismatch",
                    field="price.total.currency",
                    value=total.currency,
                    message=f"max price is in {policy.max_price.currency}",
                )
            )
        elif total.amount > policy.max_price.amount:
            reasons.append(
                Reason(
                    code="over_max_price",
                    field="price.total",
                    value=str(total.amount),
                    message=f"{_money(total)} exceeds the maximum {_money(policy.max_price)}",
                )
            )
    if policy.promise_required:
        if not quote.meets_promise:
            reasons.append(
                Reason(
                    code="misses_promise",
                    field="meets_promise",
                    value="false",
                    message=f"estimated delivery {quote.estimated_delivery_date.isoformat()} "
                    "misses the promised date",
                )
            )
        elif quote.on_time_probability < policy.min_on_time_probability:
            reasons.append(
                Reason(
                    code="below_on_time_target",
                    field="on_time_probability",
                    value=f"{quote.on_time_probability:.2f}",
                    message=f"on-time probability {quote.on_time_probability:.2f} is below "
                    f"the target {policy.min_on_time_probability:.2f}",
                )
            )
    return tuple(reasons)


def _scorecard(carrier: str, scorecards: Mapping[str, Scorecard], default: Scorecard) -> Scorecard:
    found = scorecards.get(carrier)
    if found is not None:
        return found
    return Scorecard(
        carrier=carrier,
        on_time_rate=default.on_time_rate,
        first_attempt_rate=default.first_attempt_rate,
        exception_rate=default.exception_rate,
    )


def score_quote(
    quote: Quote,
    objective: Objective,
    *,
    cheapest: int,
    fastest: date,
    weights: Weights,
    scorecard: Scorecard,
) -> float:
    """The quote's score in [0, 1] (higher is better) relative to the best eligible quote."""
    amount = quote.price.total.amount
    cost = 1.0 if amount <= 0 else min(1.0, max(cheapest, 0) / amount)
    if objective == "cheapest_meeting_promise":
        value = cost
    elif objective == "fastest":
        late_days = (quote.estimated_delivery_date - fastest).days
        value = 1.0 / (1 + max(late_days, 0))
    else:
        if weights.total <= 0:
            raise ValueError("weighted objective needs at least one positive weight")
        value = (
            weights.cost * cost
            + weights.on_time * scorecard.on_time_rate
            + weights.first_attempt * scorecard.first_attempt_rate
            + weights.exceptions * (1.0 - scorecard.exception_rate)
        ) / weights.total
    return round(value, SCORE_DECIMALS)


def _sort_key(
    quote: Quote, score: float, policy: Policy
) -> tuple[int, float, int, int, float, str, str, str]:
    preferred = policy.preferred_carriers
    pref_rank = preferred.index(quote.carrier) if quote.carrier in preferred else len(preferred)
    amount = quote.price.total.amount
    eta = quote.estimated_delivery_date.toordinal()
    primary: float
    if policy.objective == "cheapest_meeting_promise":
        primary = float(amount)
    elif policy.objective == "fastest":
        primary = float(eta)
    else:
        primary = -score
    return (
        pref_rank,
        primary,
        amount,
        eta,
        -quote.on_time_probability,
        quote.carrier,
        quote.service,
        quote.quote_id,
    )


def rank(
    quotes: Sequence[Quote],
    policy: Policy,
    requirements: Requirements,
    *,
    scorecards: Mapping[str, Scorecard],
    default_scorecard: Scorecard,
    rated_ineligible: Iterable[IneligibleCarrier] = (),
) -> Ranking:
    """Rank the quotes under the policy. Pure: same inputs, same ranking."""
    eligible: list[Quote] = []
    ineligible: list[Ineligible] = [
        Ineligible(
            carrier=item.carrier,
            service=item.service,
            quote_id=None,
            total=None,
            reasons=tuple(item.reasons) or (Reason(code="not_quoted", message="no quote"),),
        )
        for item in rated_ineligible
    ]
    for quote in quotes:
        reasons = eligibility_reasons(quote, policy, requirements)
        if reasons:
            ineligible.append(
                Ineligible(
                    carrier=quote.carrier,
                    service=quote.service,
                    quote_id=quote.quote_id,
                    total=quote.price.total,
                    reasons=reasons,
                )
            )
        else:
            eligible.append(quote)
    ranked: list[Ranked] = []
    if eligible:
        cheapest = min(q.price.total.amount for q in eligible)
        fastest = min(q.estimated_delivery_date for q in eligible)
        scored = [
            (
                q,
                score_quote(
                    q,
                    policy.objective,
                    cheapest=cheapest,
                    fastest=fastest,
                    weights=policy.weights,
                    scorecard=_scorecard(q.carrier, scorecards, default_scorecard),
                ),
            )
            for q in eligible
        ]
        scored.sort(key=lambda item: _sort_key(item[0], item[1], policy))
        ranked = [
            Ranked(
                quote=q,
                score=score,
                preferred=q.carrier in policy.preferred_carriers,
                rank=i,
            )
            for i, (q, score) in enumerate(scored)
        ]
    ineligible.sort(key=lambda i: (i.carrier, i.service or "", i.quote_id or ""))
    return Ranking(
        policy_id=policy.policy_id,
        objective=policy.objective,
        eligible=tuple(ranked),
        ineligible=tuple(ineligible),
    )


def why_lost(loser: Ranked, winner: Ranked, objective: Objective) -> Reason:
    """Why `loser` ranked below `winner`, in the objective's terms."""
    lq, wq = loser.quote, winner.quote
    if winner.preferred and not loser.preferred:
        return Reason(
            code="not_preferred",
            message=f"{wq.carrier} is a preferred carrier of this tenant",
        )
    if objective == "cheapest_meeting_promise" and lq.price.total.amount != wq.price.total.amount:
        return Reason(
            code="more_expensive",
            field="price.total",
            value=str(lq.price.total.amount),
            message=f"{_money(lq.price.total)} vs {_money(wq.price.total)}",
        )
    if objective == "fastest" and lq.estimated_delivery_date != wq.estimated_delivery_date:
        return Reason(
            code="slower",
            field="estimated_delivery_date",
            value=lq.estimated_delivery_date.isoformat(),
            message=f"delivers {lq.estimated_delivery_date.isoformat()} vs "
            f"{wq.estimated_delivery_date.isoformat()}",
        )
    if objective == "weighted" and loser.score != winner.score:
        return Reason(
            code="lower_score",
            field="score",
            value=f"{loser.score:.3f}",
            message=f"weighted score {loser.score:.3f} vs {winner.score:.3f}",
        )
    return Reason(
        code="tie_break",
        message="equal on the objective; lost the tie-break "
        "(price, delivery date, on-time probability, carrier, service, quote id)",
    )


def explain(ranking: Ranking, policy: Policy) -> str:
    """One sentence per fact a person needs to trust the ranking."""
    head = f"policy {ranking.policy_id} ({ranking.objective}"
    if policy.promise_required and policy.min_on_time_probability > 0:
        head += f", on-time probability >= {policy.min_on_time_probability:.2f}"
    if policy.max_price is not None:
        head += f", max {_money(policy.max_price)}"
    head += ")"
    total = len(ranking.eligible) + len(ranking.ineligible)
    parts = [f"{head}: {len(ranking.eligible)} of {total} candidates eligible"]
    if ranking.eligible:
        best = ranking.eligible[0]
        q = best.quote
        parts.append(
            f"best {q.carrier}/{q.service} at {_money(q.price.total)}, "
            f"delivery {q.estimated_delivery_date.isoformat()}, "
            f"on-time {q.on_time_probability:.2f}, score {best.score:.3f}"
            + (" (preferred carrier)" if best.preferred else "")
        )
    for item in ranking.ineligible:
        codes = ", ".join(r.code for r in item.reasons)
        parts.append(f"{item.carrier}/{item.service or '-'} ineligible: {codes}")
    return "; ".join(parts)
