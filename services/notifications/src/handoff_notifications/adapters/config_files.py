"""Reading the notification rules and the time-zone table from TOML files."""

from __future__ import annotations

import tomllib
from pathlib import Path

from handoff_notifications.domain.rules import RuleBook, RulesError, parse_rules


def load_rules(rules_file: Path, time_zones_file: Path | None) -> RuleBook:
    try:
        doc = tomllib.loads(rules_file.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise RulesError(str(rules_file), "-", "-", f"not valid TOML: {exc}") from None
    zones: dict[str, object] = {}
    if time_zones_file is not None:
        try:
            zone_doc = tomllib.loads(time_zones_file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise RulesError(str(time_zones_file), "-", "-", f"not valid TOML: {exc}") from None
        table = zone_doc.get("countries", {})
        if not isinstance(table, dict):
            raise RulesError(str(time_zones_file), "countries", "-", "expected a table")
        zones = table
    return parse_rules(doc, str(rules_file), zones)
