"""The command line: --help and --check-catalogue (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from handoff_rate_shopping.__main__ import main


def test_help_describes_the_service(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "handoff.rate_shopping.quotes.v1" in out
    assert "--check-catalogue" in out


def test_check_catalogue_lists_every_carrier(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config_dir = Path(__file__).resolve().parents[4] / "deploy" / "config"
    monkeypatch.setenv("HANDOFF_CONFIG_DIR", str(config_dir))
    main(["--check-catalogue"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["gigly", "nordpost", "swift", "velo"]
    assert "VL-BER" in lines[3]
