"""Tracking-number ownership: carrier formats from the code tables, and known assignments."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoff_tracking.ingress.code_tables import load_code_tables
from handoff_tracking.ingress.ownership import OwnershipIndex, check_tracking_number

CODES_DIR = Path(__file__).resolve().parents[4] / "deploy" / "config" / "carrier-codes"
TABLES = load_code_tables(CODES_DIR)


@pytest.mark.parametrize(
    ("carrier", "good", "bad"),
    [
        (
            "nordpost",
            ["RR123456785DE", "CP000000000NO"],
            ["RR12345678DE", "rr123456785de", "RR123456785D"],
        ),
        ("swift", ["SW123456789", "SW000000000"], ["SW12345678", "SX123456789", "SW1234567890"]),
        (
            "velo",
            ["VL12345678", "VL00000000"],
            ["VL-12345678", "VL1234567", "VL1234567A", "vl12345678"],
        ),
        (
            "gigly",
            ["GG-7K2M9Q4X", "GG-00000000"],
            ["GG7K2M9Q4X", "GG-7k2m9q4x", "GG-7K2M9Q4", "gg-7K2M9Q4X"],
        ),
    ],
)
def test_carrier_tracking_number_formats(carrier: str, good: list[str], bad: list[str]) -> None:
    table = TABLES[carrier]
    assert table.example_tracking_number is not None and table.owns_format(
        table.example_tracking_number
    )
    for number in good:
        assert table.owns_format(number), number
    for number in bad:
        assert not table.owns_format(number), number


def test_formats_do_not_overlap_between_the_sample_carriers() -> None:
    for carrier, table in TABLES.items():
        assert table.example_tracking_number is not None
        others = [
            c
            for c, t in TABLES.items()
            if c != carrier and t.owns_format(table.example_tracking_number)
        ]
        assert others == [], carrier


def test_own_format_is_accepted_before_any_assignment_is_known() -> None:
    assert check_tracking_number("swift", "SW123456789", TABLES, frozenset()).outcome == "ok"


def test_another_carriers_format_is_foreign() -> None:
    verdict = check_tracking_number("nordpost", "SW123456789", TABLES, frozenset())
    assert verdict.outcome == "foreign"
    assert "another carrier" in verdict.detail


def test_a_format_nobody_uses_is_invalid() -> None:
    verdict = check_tracking_number("swift", "12345", TABLES, frozenset())
    assert verdict.outcome == "invalid_format"
    assert "^SW[0-9]{9}$" in verdict.detail


def test_a_known_assignment_decides_over_the_format() -> None:
    index = OwnershipIndex()
    index.record("velo", "RR123456785DE")
    owners = index.owners("RR123456785DE")
    assert owners == {"velo"}
    # Nordpost's format, but Handoff allocated the number to velo: nordpost may not post for it.
    assert check_tracking_number("nordpost", "RR123456785DE", TABLES, owners).outcome == "foreign"
    assert check_tracking_number("velo", "RR123456785DE", TABLES, owners).outcome == "ok"
    # A number shared by two carriers (each allocated it) is each one's own.
    index.record("nordpost", "RR123456785DE")
    both = index.owners("RR123456785DE")
    assert check_tracking_number("nordpost", "RR123456785DE", TABLES, both).outcome == "ok"
    assert len(index) == 1
