"""The allocation policy as pure functions: eligibility, ordering, tie-breaks, explanations."""

from __future__ import annotations

import itertools
from datetime import date

import pytest
from handoff_carrier_allocation.domain.policy import (
    Policy,
    Scorecard,
    Weights,
    explain,
    rank,
    required_capabilities,
    why_lost,
)
from handoff_carrier_allocation.domain.scorecards import ScorecardDefaults
from handoff_events.contracts import IneligibleCarrier
from handoff_events.values import Money, Reason, Requirements
from hypothesis import given, settings
from hypothesis import strategies as st

from services.carrier_allocation.tests.factories import quote

DEFAULT_CARD = ScorecardDefaults().scorecard()
CHEAPEST = Policy(policy_id="t", objective="cheapest_meeting_promise", min_on_time_probability=0.8)


def ranked_ids(ranking):
    return [r.quote.carrier + "/" + r.quote.service for r in ranking.eligible]


def reasons_of(ranking, carrier):
    return {r.code for item in ranking.ineligible if item.carrier == carrier for r in item.reasons}


NO_REQUIREMENTS = Requirements()


def do_rank(quotes, policy=CHEAPEST, requirements=NO_REQUIREMENTS, scorecards=None, **kw):
    return rank(
        quotes,
        policy,
        requirements,
        scorecards=scorecards or {},
        default_scorecard=DEFAULT_CARD,
        **kw,
    )


def test_cheapest_meeting_promise_orders_by_price_and_drops_promise_misses():
    ranking = do_rank(
        [
            quote("swift", 990),
            quote("nordpost", 590),
            quote("gigly", 390, meets_promise=False),
            quote("velo", 790, on_time=0.6),
        ]
    )
    assert ranked_ids(ranking) == ["nordpost/parcel", "swift/parcel"]
    assert [r.score for r in ranking.eligible] == [1.0, round(590 / 990, 6)]
    assert reasons_of(ranking, "gigly") == {"misses_promise"}
    assert reasons_of(ranking, "velo") == {"below_on_time_target"}


@pytest.mark.parametrize(
    ("quotes", "expected"),
    [
        # equal price: earlier delivery wins
        (
            [quote("a", 500, eta=date(2026, 11, 22)), quote("b", 500, eta=date(2026, 11, 21))],
            ["b/parcel", "a/parcel"],
        ),
        # equal price and date: higher on-time probability wins
        ([quote("a", 500, on_time=0.9), quote("b", 500, on_time=0.97)], ["b/parcel", "a/parcel"]),
        # all equal: carrier code, then service
        (
            [quote("b", 500), quote("a", 500, service="z"), quote("a", 500, service="y")],
            ["a/y", "a/z", "b/parcel"],
        ),
    ],
)
def test_ties_are_broken_deterministically(quotes, expected):
    for perm in itertools.permutations(quotes):
        assert ranked_ids(do_rank(list(perm))) == expected


def test_tie_reason_names_the_tie_break():
    ranking = do_rank([quote("b", 500), quote("a", 500)])
    assert why_lost(ranking.eligible[1], ranking.eligible[0], "cheapest_meeting_promise").code == (
        "tie_break"
    )


def test_every_candidate_ineligible_gives_reasons_for_each():
    policy = Policy(
        policy_id="strict",
        objective="cheapest_meeting_promise",
        min_on_time_probability=0.9,
        excluded_carriers=frozenset({"gigly"}),
        max_price=Money(amount=500, currency="EUR"),
    )
    ranking = do_rank(
        [
            quote("gigly", 300),
            quote("swift", 900),
            quote("nordpost", 400, meets_promise=False),
            quote("velo", 450, capabilities=()),
        ],
        policy,
        Requirements(cold_chain=True),
        rated_ineligible=[
            IneligibleCarrier(carrier="coldco", service=None, reasons=[Reason(code="out_of_area")])
        ],
    )
    assert ranking.eligible == ()
    assert reasons_of(ranking, "gigly") == {"carrier_excluded", "missing_capability"}
    assert reasons_of(ranking, "swift") == {"over_max_price", "missing_capability"}
    assert reasons_of(ranking, "nordpost") == {"misses_promise", "missing_capability"}
    assert reasons_of(ranking, "velo") == {"missing_capability"}
    assert reasons_of(ranking, "coldco") == {"out_of_area"}
    text = explain(ranking, policy)
    assert "0 of 5 candidates eligible" in text
    assert "gigly/parcel ineligible: carrier_excluded, missing_capability" in text


def test_preferred_carrier_that_misses_the_promise_is_not_chosen():
    policy = Policy(
        policy_id="acme",
        objective="cheapest_meeting_promise",
        preferred_carriers=("swift",),
    )
    ranking = do_rank(
        [quote("swift", 300, meets_promise=False), quote("nordpost", 700), quote("velo", 900)],
        policy,
    )
    assert ranked_ids(ranking) == ["nordpost/parcel", "velo/parcel"]
    assert reasons_of(ranking, "swift") == {"misses_promise"}


def test_preferred_carrier_that_is_eligible_ranks_first_even_if_dearer():
    policy = Policy(
        policy_id="acme", objective="cheapest_meeting_promise", preferred_carriers=("swift",)
    )
    ranking = do_rank([quote("swift", 900), quote("nordpost", 700)], policy)
    assert ranked_ids(ranking) == ["swift/parcel", "nordpost/parcel"]
    assert why_lost(ranking.eligible[1], ranking.eligible[0], policy.objective).code == (
        "not_preferred"
    )


@pytest.mark.parametrize(
    ("total", "currency", "eligible", "code"),
    [
        (2500, "EUR", True, None),  # exactly the maximum is allowed
        (2501, "EUR", False, "over_max_price"),
        (100, "GBP", False, "currency_mismatch"),
    ],
)
def test_max_price(total, currency, eligible, code):
    policy = Policy(
        policy_id="t",
        objective="fastest",
        require_promise=False,
        max_price=Money(amount=2500, currency="EUR"),
    )
    ranking = do_rank([quote("swift", total, currency=currency)], policy)
    assert bool(ranking.eligible) is eligible
    if code:
        assert reasons_of(ranking, "swift") == {code}


def test_fastest_ignores_promise_when_not_required_and_orders_by_date():
    policy = Policy(policy_id="g", objective="fastest", require_promise=False)
    ranking = do_rank(
        [
            quote("nordpost", 400, eta=date(2026, 11, 23), meets_promise=False),
            quote("velo", 1500, eta=date(2026, 11, 20)),
            quote("swift", 900, eta=date(2026, 11, 21)),
        ],
        policy,
    )
    assert ranked_ids(ranking) == ["velo/parcel", "swift/parcel", "nordpost/parcel"]
    assert [r.score for r in ranking.eligible] == [1.0, 0.5, round(1 / 4, 6)]


def test_allowed_carriers_and_capabilities():
    policy = Policy(
        policy_id="g",
        objective="fastest",
        require_promise=False,
        allowed_carriers=frozenset({"swift", "velo"}),
    )
    ranking = do_rank(
        [
            quote("swift", 900, capabilities=("signature", "age_check")),
            quote("velo", 500, capabilities=("signature",)),
            quote("gigly", 100, capabilities=("signature", "age_check")),
        ],
        policy,
        Requirements(signature=True, min_age=18),
    )
    assert ranked_ids(ranking) == ["swift/parcel"]
    assert reasons_of(ranking, "velo") == {"missing_capability"}
    assert reasons_of(ranking, "gigly") == {"carrier_not_allowed"}


def test_weighted_uses_scorecards_and_defaults():
    policy = Policy(
        policy_id="acme",
        objective="weighted",
        weights=Weights(cost=1.0, on_time=1.0, first_attempt=0.0, exceptions=0.0),
    )
    cards = {
        "swift": Scorecard(
            carrier="swift", on_time_rate=0.99, first_attempt_rate=0.9, exception_rate=0.01
        ),
        "nordpost": Scorecard(
            carrier="nordpost", on_time_rate=0.50, first_attempt_rate=0.9, exception_rate=0.01
        ),
    }
    # nordpost is cheaper but late half the time; swift costs 20% more but is reliable.
    ranking = do_rank([quote("nordpost", 500), quote("swift", 600)], policy, scorecards=cards)
    assert ranked_ids(ranking) == ["swift/parcel", "nordpost/parcel"]
    assert ranking.eligible[0].score == round((500 / 600 + 0.99) / 2, 6)
    assert ranking.eligible[1].score == round((1.0 + 0.50) / 2, 6)
    # a carrier without a scorecard gets the documented defaults
    ranking = do_rank([quote("velo", 500)], policy, scorecards=cards)
    assert ranking.eligible[0].score == round((1.0 + DEFAULT_CARD.on_time_rate) / 2, 6)


def test_required_capabilities_mapping():
    assert required_capabilities(Requirements()) == ()
    assert required_capabilities(Requirements(signature=True, min_age=16, cold_chain=True)) == (
        "signature",
        "age_check",
        "cold_chain",
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["nordpost", "swift", "velo", "gigly"]),
            st.sampled_from(["parcel", "express"]),
            st.integers(0, 5000),
            st.integers(0, 4),
            st.booleans(),
            st.floats(0, 1),
        ),
        max_size=8,
        unique_by=lambda t: (t[0], t[1]),
    ),
    st.sampled_from(["cheapest_meeting_promise", "fastest", "weighted"]),
    st.randoms(use_true_random=False),
)
def test_ranking_is_a_function_of_the_set_of_quotes(rows, objective, rnd):
    quotes = [
        quote(c, total, service=s, eta=date(2026, 11, 21 + d), meets_promise=m, on_time=p)
        for c, s, total, d, m, p in rows
    ]
    policy = Policy(policy_id="p", objective=objective, min_on_time_probability=0.5)
    first = do_rank(quotes, policy)
    shuffled = list(quotes)
    rnd.shuffle(shuffled)
    again = do_rank(shuffled, policy)
    assert first == again
    assert len(first.eligible) + len(first.ineligible) == len(quotes)
    assert all(0.0 <= r.score <= 1.0 for r in first.eligible)
    if objective == "cheapest_meeting_promise" and first.eligible:
        prices = [r.quote.price.total.amount for r in first.eligible]
        assert prices == sorted(prices)
