"""The location catalogue file: the shipped one is valid; broken ones name entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoff_order_intake.adapters.location_file import LocationFileError, parse_locations

from services.order_intake.tests.unit.orders import LOCATIONS_FILE, catalogue

GOOD = """
[[locations]]
id = "WH-X-1"
name = "X"
kind = "warehouse"
time_zone = "Europe/Berlin"
cutoff_local = "18:00"
address = { line1 = "a", postal_code = "10557", city = "Berlin", country = "DE" }
"""


def test_the_shipped_catalogue_covers_berlin_munich_amsterdam_and_returns() -> None:
    locations = catalogue()
    assert len(locations) >= 6
    cities = {loc.city for loc in locations.values()}
    assert {"Berlin", "München", "Amsterdam"} <= cities
    assert {loc.country for loc in locations.values()} == {"DE", "NL"}
    assert any(loc.kind == "return_centre" for loc in locations.values())
    assert locations["WH-AMS-1"].postal_code == "1043 AP"


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('kind = "warehouse"', 'kind = "depot"', "locations[0] (WH-X-1): field `kind`"),
        ('"Europe/Berlin"', '"Europe/Atlantis"', "locations[0] (WH-X-1): field `time_zone`"),
        ('"18:00"', '"6pm"', "locations[0] (WH-X-1): field `cutoff_local`"),
        ('postal_code = "10557"', 'postal_code = "1055"', "field `address.postal_code`"),
        ('country = "DE"', 'country = "XX"', "field `address.country`"),
        ('name = "X"\n', "", "field `name`"),
    ],
)
def test_a_broken_entry_is_named_with_its_field(old: str, new: str, message: str) -> None:
    with pytest.raises(LocationFileError) as err:
        parse_locations(GOOD.replace(old, new), Path("locations.toml"))
    assert "locations.toml" in str(err.value)
    assert message in str(err.value)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(LocationFileError, match="duplicate"):
        parse_locations(GOOD + GOOD, Path("locations.toml"))


def test_the_file_path_is_real() -> None:
    assert LOCATIONS_FILE.exists()
