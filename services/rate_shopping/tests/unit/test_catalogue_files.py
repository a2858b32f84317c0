"""Catalogue files: the sample loads; every error names the file, the entry and the field."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest
from handoff_rate_shopping.adapters.catalogue_files import (
    CatalogueError,
    load_catalogue,
    parse_carrier,
)
from handoff_rate_shopping.domain.catalogue import Catalogue

MINIMAL = """
code = "tiny"
name = "Tiny Couriers"
currency = "EUR"
dimensional_divisor = 5000
tax_rate_bp = 1900
working_days = ["mon", "tue", "wed", "thu", "fri"]

[surcharges]
fuel_bp = 1000

[[coverage]]
country = "DE"
postal_ranges = [["10115", "14199"]]

[[hubs]]
hub_id = "TY-BER"
country = "DE"
time_zone = "Europe/Berlin"
cutoff_local = "16:00"
daily_capacity = 50
origin_location_ids = ["WH-BER-1"]

[[zones]]
zone = "city"
origin_country = "DE"
dest_country = "DE"

[[services]]
code = "fast"
service_level = "next_day"
transit_days = 1
delivery_hours = ["09:00", "17:00"]
max_longest_side_mm = 600

[[services.weight_breaks]]
max_g = 1000
prices = { city = 700 }

[[services.weight_breaks]]
max_g = 5000
prices = { city = 900 }
"""


def test_the_sample_catalogue_loads(catalogue: Catalogue) -> None:
    assert [c.code for c in catalogue.carriers] == ["gigly", "nordpost", "swift", "velo"]
    velo = catalogue.carrier("velo")
    assert velo is not None
    assert {h.hub_id for h in velo.hubs} == {"VL-BER", "VL-MUC", "VL-AMS"}
    assert velo.coverage[0].covers("DE", "10119")
    assert not velo.coverage[0].covers("DE", "20095")  # Hamburg
    nordpost = catalogue.carrier("nordpost")
    assert nordpost is not None
    assert {s.service_level for s in nordpost.services} == {"standard", "pickup_point"}
    # every location id order intake uses is collected by Nordpost
    for location in ("WH-BER-1", "WH-MUC-1", "MFC-AMS-1", "ST-BER-2", "RC-DE-1", "RC-NL-1"):
        assert any(location in h.origin_location_ids for h in nordpost.hubs), location


def test_a_minimal_file_parses() -> None:
    carrier = parse_carrier("tiny.toml", MINIMAL)
    assert carrier.services[0].delivery_end == time(17, 0)
    assert carrier.working_days == frozenset({1, 2, 3, 4, 5})
    assert carrier.surcharges.fuel_bp == 1000


@pytest.mark.parametrize(
    ("old", "new", "entry", "field", "message"),
    [
        (
            "transit_days = 1",
            'transit_days = "one"',
            "services[0]",
            "transit_days",
            "Expected `int`",
        ),
        ("transit_days = 1", "transit_days = -1", "services[0]", "transit_days", ">= 0"),
        (
            "prices = { city = 900 }",
            "prices = { town = 900 }",
            "services[0].weight_breaks[1]",
            "prices",
            "city",
        ),
        (
            "prices = { city = 900 }",
            "prices = { city = 9.5 }",
            "services[0].weight_breaks[1]",
            "prices",
            "int",
        ),
        ("max_g = 5000", "max_g = 800", "services[0].weight_breaks[1]", "max_g", "greater than"),
        ("fuel_bp = 1000", "fuel_pct = 10", "surcharges", "fuel_pct", "unknown field"),
        (
            'time_zone = "Europe/Berlin"',
            'time_zone = "Europe/Atlantis"',
            "hubs[0]",
            "time_zone",
            "Atlantis",
        ),
        (
            'cutoff_local = "16:00"',
            'cutoff_local = "4pm"',
            "hubs[0]",
            "cutoff_local",
            "matching regex",
        ),
        ('["09:00", "17:00"]', '["17:00", "09:00"]', "services[0]", "delivery_hours", "before"),
        (
            'service_level = "next_day"',
            'service_level = "overnight"',
            "services[0]",
            "service_level",
            "overnight",
        ),
        ('code = "tiny"', 'code = "huge"', "", "code", "file name"),
        ('["10115", "14199"]', '["14199", "10115"]', "coverage[0]", "postal_ranges[0]", "low"),
        ("daily_capacity = 50\n", "", "hubs[0]", "daily_capacity", "missing required field"),
    ],
)
def test_errors_name_file_entry_and_field(
    old: str, new: str, entry: str, field: str, message: str
) -> None:
    assert old in MINIMAL
    with pytest.raises(CatalogueError) as caught:
        parse_carrier("deploy/config/carriers/tiny.toml", MINIMAL.replace(old, new, 1))
    error = caught.value
    assert error.file == "deploy/config/carriers/tiny.toml"
    assert (error.entry, error.field) == (entry, field)
    assert message in str(error)
    assert str(error).startswith("deploy/config/carriers/tiny.toml: ")


def test_invalid_toml_and_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(CatalogueError, match="not valid TOML"):
        parse_carrier("x.toml", "code = ")
    with pytest.raises(CatalogueError, match="no carrier files"):
        load_catalogue(tmp_path)
    (tmp_path / "tiny.toml").write_text(
        MINIMAL.replace("max_longest_side_mm = 600", "max_longest_side_mm = 0")
    )
    with pytest.raises(CatalogueError) as caught:
        load_catalogue(tmp_path)
    assert caught.value.file.endswith("tiny.toml")
    assert (caught.value.entry, caught.value.field) == ("services[0]", "max_longest_side_mm")
