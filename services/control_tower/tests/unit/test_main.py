"""The command line: --help names the settings, and every one it names exists."""

from __future__ import annotations

import re

import pytest
from handoff_control_tower.__main__ import EPILOG, main
from handoff_control_tower.settings import ControlTowerSettings


def test_help_describes_the_tower_and_its_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "HANDOFF_SERVICE_URLS" in out and "control tower" in out


def test_every_setting_the_help_names_is_read() -> None:
    named = re.findall(r"^\s+(HANDOFF_[A-Z_]+)", EPILOG, flags=re.MULTILINE)
    assert named
    for name in named:
        assert name.removeprefix("HANDOFF_").lower() in ControlTowerSettings.model_fields, name
