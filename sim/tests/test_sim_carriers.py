"""The simulated carriers: journeys in each carrier's own codes, reproducible, with the odd mishap."""

from __future__ import annotations

import hashlib
import hmac
import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from handoff_sim.carriers import (
    DEFAULT_INTEGRATIONS,
    DEFAULT_PROFILES,
    CarrierProfile,
    Step,
    code_for,
    load_service_levels,
    plan_journey,
    plan_scans,
    sign,
)
from handoff_sim.world import WorldConfigError, load_all_carrier_codes, load_carrier_codes

REPO = Path(__file__).resolve().parents[2]
TABLES = load_all_carrier_codes(REPO / "deploy" / "config" / "carrier-codes")
AT = datetime(2026, 11, 20, 17, 0, tzinfo=UTC)
TERMINAL_SCANS = {"delivered", "returned_to_sender"}


def statuses(carrier: str, scans: list) -> list[str]:
    """Canonical statuses in the order the scans happened (late ones in place, no duplicates)."""
    table = {c.code: c.status for c in TABLES[carrier].codes}
    happened = sorted((s for s in scans if not s.duplicate), key=lambda s: s.event.occurred_at)
    return [table[s.event.code] for s in happened]


def test_every_catalogue_carrier_is_simulated_with_an_integration() -> None:
    assert set(DEFAULT_INTEGRATIONS) == set(TABLES) == set(DEFAULT_PROFILES)
    assert {c for c, way in DEFAULT_INTEGRATIONS.items() if way == "webhook"} == {"swift", "gigly"}


@pytest.mark.parametrize("carrier", sorted(TABLES))
def test_scans_use_only_the_carriers_own_codes(carrier: str) -> None:
    own = {c.code for c in TABLES[carrier].codes}
    for n in range(300):
        _, scans = plan_scans(
            1, TABLES[carrier], f"T{n}", "next_day", AT, DEFAULT_PROFILES[carrier]
        )
        assert scans
        assert {s.event.code for s in scans} <= own
        assert all(s.event.carrier == carrier for s in scans)


def test_same_seed_same_scans_and_event_ids_are_unique_except_duplicates() -> None:
    first = plan_scans(3, TABLES["swift"], "SW000000001", "two_day", AT)
    assert first == plan_scans(3, TABLES["swift"], "SW000000001", "two_day", AT)
    assert first != plan_scans(4, TABLES["swift"], "SW000000001", "two_day", AT)
    for n in range(200):
        _, scans = plan_scans(5, TABLES["nordpost"], f"NP{n:09d}DE", "standard", AT)
        originals = [s.event.event_id for s in scans if not s.duplicate]
        assert len(originals) == len(set(originals))
        dupes = [s for s in scans if s.duplicate]
        assert all(d.event in [s.event for s in scans if not s.duplicate] for d in dupes)


def test_a_delivered_journey_is_ordered_with_proof_and_takes_about_a_day_for_next_day() -> None:
    calm = CarrierProfile(failed_attempt=0, collected=0, delayed=0, returned=0, lost=0,
                          late_scan=0, duplicate_scan=0)  # fmt: skip
    outcome, scans = plan_scans(1, TABLES["swift"], "SW123456789", "next_day", AT, calm)
    assert outcome == "delivered"
    seen = statuses("swift", scans)
    assert seen[0] == "allocated" and seen[1] == "picked_up" and seen[-1] == "delivered"
    assert seen.index("out_for_delivery") < seen.index("delivered")
    assert "in_transit" in seen
    times = [s.event.occurred_at for s in scans]
    assert times == sorted(times)
    delivered = scans[-1].event
    assert delivered.proof is not None and (delivered.proof.photo_ref or delivered.proof.signed_by)
    assert timedelta(hours=10) < delivered.occurred_at - AT < timedelta(hours=30)


def test_velo_has_no_hub_scans_so_its_journeys_skip_them() -> None:
    calm = CarrierProfile(failed_attempt=0, collected=0, delayed=0, returned=0, lost=0)
    _, scans = plan_scans(1, TABLES["velo"], "VL12345678", "same_day", AT, calm)
    assert "in_transit" not in statuses("velo", scans)
    assert statuses("velo", scans)[-1] == "delivered"


def test_outcomes_over_many_parcels_include_every_failure_mode() -> None:
    outcomes: Counter[str] = Counter()
    late = dupes = 0
    for n in range(800):
        outcome, scans = plan_scans(9, TABLES["nordpost"], f"NP{n:09d}DE", "next_day", AT)
        outcomes[outcome] += 1
        late += sum(s.late for s in scans)
        dupes += sum(s.duplicate for s in scans)
        seen = statuses("nordpost", scans)
        if outcome == "returned":
            assert seen[-1] == "returned_to_sender" and "returning_to_sender" in seen
        if outcome == "reattempted":
            assert seen.count("delivery_attempt_failed") == 1 and seen[-1] == "delivered"
        if outcome == "collected":
            assert "available_for_pickup" in seen and seen[-1] == "delivered"
        if outcome == "lost":
            assert seen[-1] == "exception" and not TERMINAL_SCANS & set(seen)
    assert set(outcomes) >= {"delivered", "reattempted", "collected", "delayed", "returned"}
    assert outcomes["delivered"] > 0.7 * 800
    assert late > 0 and dupes > 0


def test_a_late_scan_is_sent_after_a_scan_that_happened_later() -> None:
    profile = CarrierProfile(late_scan=1.0, duplicate_scan=0)
    _, scans = plan_scans(2, TABLES["swift"], "SW111111111", "standard", AT, profile)
    sent_order = [s.event.occurred_at for s in scans]
    assert sent_order != sorted(sent_order)


def test_repeated_attempts_use_the_carriers_successive_codes() -> None:
    table = TABLES["swift"]
    first = code_for(table, Step(0, "delivery_attempt_failed", "recipient_absent", attempt=0))
    second = code_for(table, Step(0, "delivery_attempt_failed", "recipient_absent", attempt=1))
    assert (first and first.code, second and second.code) == ("NH1", "NH2")
    assert code_for(TABLES["velo"], Step(0, "in_transit", "arrived_at_facility")) is None


def test_pickup_point_parcels_wait_at_the_point_before_collection() -> None:
    rng = random.Random(1)
    _, steps = plan_journey(rng, "pickup_point", CarrierProfile(lost=0, returned=0))
    assert [s.status for s in steps][-2:] == ["available_for_pickup", "delivered"]


def test_webhook_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'[{"carrier":"swift"}]'
    expected = hmac.new(b"dev-swift-secret", b"1763650000." + body, hashlib.sha256).hexdigest()
    assert sign("dev-swift-secret", 1763650000, body) == f"v1={expected}"


def test_service_levels_come_from_the_carrier_catalogue() -> None:
    levels = load_service_levels(REPO / "deploy" / "config" / "carriers")
    assert levels[("swift", "express")] == "next_day"
    assert levels[("velo", "sameday")] == "same_day"


def test_a_broken_code_table_is_reported_with_file_and_entry(tmp_path: Path) -> None:
    path = tmp_path / "swift.toml"
    path.write_text(
        'carrier = "swift"\ntracking_number_pattern = "^SW"\n[codes.X]\nsub_status = "a"\n'
    )
    with pytest.raises(WorldConfigError) as err:
        load_carrier_codes(path)
    assert err.value.entry == "codes.X" and err.value.field == "status"
