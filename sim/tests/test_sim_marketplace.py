"""The marketplace generator: reproducible, realistic, and every order decodes as intake expects."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from handoff_events.contracts import OrderPlaced, ShipmentUpdate
from handoff_events.ids import shipment_id
from handoff_sim.marketplace import (
    HOURLY_DEMAND,
    demand_at,
    generate_orders,
    plan_return,
    promise_for,
)
from handoff_sim.world import WorldConfigError, load_world

REPO = Path(__file__).resolve().parents[2]
WORLD = load_world(REPO / "deploy" / "config")
START = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)


def orders(seed: int, n: int, **kw: object) -> list:
    return generate_orders(seed, n, world=WORLD, start=START, **kw)  # type: ignore[arg-type]


def test_same_seed_same_orders_other_seed_other_orders() -> None:
    first, again, other = orders(7, 200), orders(7, 200), orders(8, 200)
    assert [o.body for o in first] == [o.body for o in again]
    assert [o.offset_s for o in first] == [o.offset_s for o in again]
    assert [o.body for o in first] != [o.body for o in other]


def test_a_prefix_of_the_stream_is_the_same_whatever_n() -> None:
    assert [o.body for o in orders(3, 20)] == [o.body for o in orders(3, 100)[:20]]


def test_valid_orders_decode_as_order_placed_and_defective_ones_name_their_field() -> None:
    planned = orders(11, 600)
    decoder = msgspec.json.Decoder(OrderPlaced)
    defects = Counter(o.defect for o in planned)
    assert defects["invalid_postal_code"] > 0 and defects["missing_field"] > 0
    for o in planned:
        if o.defect == "missing_field":
            with pytest.raises(msgspec.ValidationError):
                decoder.decode(o.body)
            assert o.defect_field is not None
            assert o.expected_shipment_ids == ()
        else:
            decoded = decoder.decode(o.body)
            assert decoded == o.order
            assert decoded.placed_at.tzinfo is not None


def test_mix_of_tenants_channels_levels_origins_and_cancellations() -> None:
    planned = orders(5, 800)
    tenants = Counter(o.tenant_id for o in planned)
    assert set(tenants) == {"acme", "globex", "northwind"}
    assert tenants["acme"] > tenants["northwind"]
    assert {o.channel for o in planned} == {"topic", "http"}
    # northwind has no API key: it can only use the topic
    assert all(o.channel == "topic" for o in planned if o.tenant_id == "northwind")
    assert len({o.order.service_level for o in planned}) >= 4
    multi = [o for o in planned if len(o.origins) == 2]
    assert multi, "some orders ship from two origins"
    for o in multi:
        assert all(p.origin_location_id in o.origins for p in o.order.parcels)
        assert {ln.origin_location_id for ln in o.order.lines} == set(o.origins)
        if o.defect is None:
            assert len(o.expected_shipment_ids) == 2
    cancels = [o for o in planned if o.cancel is not None]
    assert cancels and all(c.cancel.offset_s > c.offset_s for c in cancels)  # type: ignore[union-attr]


def test_same_day_only_within_the_origins_city() -> None:
    for o in orders(9, 600):
        if o.order.service_level == "same_day":
            origin = WORLD.origins[o.order.ship_from.location_id]
            assert origin.city == o.order.ship_to.city


def test_expected_shipment_ids_follow_intakes_derivation() -> None:
    o = next(p for p in orders(2, 200) if p.defect is None and len(p.origins) == 2)
    assert o.expected_shipment_ids == tuple(
        shipment_id(o.tenant_id, o.order.order_id, origin) for origin in o.origins
    )


def test_daily_curve_has_an_evening_peak_and_the_arrivals_follow_it() -> None:
    assert max(range(24), key=lambda h: HOURLY_DEMAND[h]) in (19, 20, 21)
    assert demand_at(20.0) > 1.5 * demand_at(10.0) > 3 * demand_at(3.0)
    # A day compressed into 240 s, starting at midnight: count arrivals per simulated hour.
    planned = orders(1, 800, orders_per_second=3.0, day_length_s=240.0, start_hour=0.0)
    per_hour = Counter(int(o.offset_s / 10.0) % 24 for o in planned if o.offset_s < 240.0)
    assert per_hour[20] > per_hour[10] > per_hour[3]


def test_promise_is_after_placement_and_skips_the_weekend() -> None:
    friday_evening = datetime(2026, 11, 20, 19, 0, tzinfo=UTC)
    promise = promise_for("next_day", friday_evening, "Europe/Berlin")
    assert promise > friday_evening
    assert promise.weekday() < 5 and promise.date().isoformat() == "2026-11-25"


def test_returns_are_seeded_per_shipment_and_list_that_origins_lines() -> None:
    planned = [o for o in orders(4, 400) if o.defect is None and len(o.origins) == 2]
    profile = WORLD.tenant(planned[0].tenant_id)
    made = 0
    for o in planned:
        sid = o.expected_shipment_ids[1]
        update = ShipmentUpdate(
            update_id="u1",
            shipment_id=sid,
            order_id=o.order.order_id,
            tenant_id=o.tenant_id,
            milestone="delivered",
            status="delivered",
            occurred_at=START,
        )
        first = plan_return(4, o, WORLD.tenant(o.tenant_id), update, START)
        assert first == plan_return(4, o, WORLD.tenant(o.tenant_id), update, START)
        if first is not None:
            made += 1
            skus = {ln.sku for ln in o.order.lines if ln.origin_location_id == o.origins[1]}
            assert {i.sku for i in first.items} <= skus
            assert first.shipment_id == sid
    assert profile.return_rate > 0 and made > 0


def test_world_errors_name_file_entry_and_field(tmp_path: Path) -> None:
    (tmp_path / "sim").mkdir()
    (tmp_path / "locations.toml").write_bytes((REPO / "deploy/config/locations.toml").read_bytes())
    doc = (REPO / "deploy/config/sim/marketplaces.toml").read_text()
    (tmp_path / "sim" / "marketplaces.toml").write_text(
        doc.replace('origins = ["WH-AMS-1"', 'origins = ["RC-NL-1"')
    )
    with pytest.raises(WorldConfigError) as err:
        load_world(tmp_path)
    assert "marketplaces.toml" in str(err.value)
    assert err.value.entry == "tenants[1] (globex)" and err.value.field == "origins[0]"


def test_orders_cli_prints_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from handoff_sim.__main__ import main

    assert main(["orders", "--seed", "3", "-n", "3"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["seq"] for x in lines] == [1, 2, 3]
    assert lines[0]["order"]["order_id"].endswith("-3-000001")
