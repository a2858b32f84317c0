"""The command line: --help names the settings, and every one it names exists."""

from __future__ import annotations

import re

import pytest
from handoff_tracking.__main__ import EPILOG, main
from handoff_tracking.ingress.settings import TrackingIngressSettings
from handoff_tracking.settings import TrackingSettings


def test_help_describes_the_service_and_its_settings(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "HANDOFF_QUERY_RETENTION_DAYS" in out and "HANDOFF_TRACKING_STAGES" in out


def test_every_setting_the_help_names_is_read() -> None:
    fields = {*TrackingSettings.model_fields, *TrackingIngressSettings.model_fields}
    named = re.findall(r"^\s+(HANDOFF_[A-Z_]+)", EPILOG, flags=re.MULTILINE)
    assert named
    for name in named:
        if name == "HANDOFF_TRACKING_STAGES":  # read by __main__ itself
            continue
        assert name.removeprefix("HANDOFF_").lower() in fields, name
