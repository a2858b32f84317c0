"""The policy file loader: the shipped files load; errors name file, entry and field."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from handoff_returns.adapters.policy_file import PolicyFileError, load_config

REPO = Path(__file__).resolve().parents[4]
LOCATIONS = REPO / "deploy" / "config" / "locations.toml"
POLICIES = REPO / "deploy" / "config" / "returns" / "policies.toml"

VALID = """
[time_zones]
DE = "Europe/Berlin"

[tenants.acme]
window_days = 14
eligible_reasons = ["damaged"]
methods = ["drop_off"]
currency = "EUR"
fees = { changed_mind = 395 }
label_validity_seconds = 2
default_time_zone = "Europe/Berlin"
return_centres = { DE = "RC-DE-1" }
"""


def test_shipped_policies_load_against_the_location_catalogue() -> None:
    config = load_config(POLICIES, LOCATIONS)
    assert {"acme", "globex"} <= set(config.policies)
    assert {"RC-DE-1", "RC-NL-1"} <= set(config.centres)
    acme = config.policies["acme"]
    assert acme.return_centre_for("NL") == "RC-NL-1"
    assert all(m.amount >= 0 and isinstance(m.amount, int) for m in acme.fees.values())


def test_compressed_label_validity_in_seconds(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(VALID)
    assert load_config(path, LOCATIONS).policies["acme"].label_validity == timedelta(seconds=2)


@pytest.mark.parametrize(
    ("change", "entry", "field"),
    [
        (
            ("fees = { changed_mind = 395 }", "fees = { changed_mind = 3.95 }"),
            "tenants.acme",
            "fees.changed_mind",
        ),
        (('DE = "RC-DE-1" }', 'DE = "WH-BER-1" }'), "tenants.acme", "return_centres.DE"),
        (('["damaged"]', '["bored"]'), "tenants.acme", "eligible_reasons"),
        (("window_days = 14", 'window_days = "14"'), "tenants.acme", "window_days"),
        (('DE = "Europe/Berlin"', 'DE = "Mars/Olympus"'), "time_zones", "DE"),
        (("label_validity_seconds = 2", ""), "tenants.acme", "label_validity_days"),
    ],
)
def test_errors_name_file_entry_and_field(
    tmp_path: Path, change: tuple[str, str], entry: str, field: str
) -> None:
    path = tmp_path / "p.toml"
    assert change[0] in VALID
    path.write_text(VALID.replace(change[0], change[1], 1))
    with pytest.raises(PolicyFileError) as err:
        load_config(path, LOCATIONS)
    assert (err.value.path, err.value.entry, err.value.field) == (path, entry, field)
    assert str(path) in str(err.value)
