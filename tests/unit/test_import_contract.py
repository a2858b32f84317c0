"""The import contract is real: the very configuration in pyproject.toml fails on a
service that imports another service, and passes on the tree as it is."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _contract_config() -> str:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    lines = ["[tool.importlinter]", f"root_packages = {config['root_packages']!r}"]
    for contract in config["contracts"]:
        lines.append("[[tool.importlinter.contracts]]")
        for key, value in contract.items():
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines).replace("'", '"') + "\n"


def _run(tmp: Path, violation: bool) -> subprocess.CompletedProcess[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    for package in config["root_packages"]:
        (tmp / package).mkdir()
        (tmp / package / "__init__.py").write_text('"""stub"""\n')
    body = "import handoff_tracking.fold\n" if violation else "import handoff_events\n"
    (tmp / "handoff_order_intake" / "handlers.py").write_text(body)
    (tmp / "handoff_tracking" / "fold.py").write_text("import handoff_events\n")
    (tmp / "pyproject.toml").write_text(_contract_config())
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(tmp / "pyproject.toml"), "--no-cache"],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": str(tmp)},
        capture_output=True,
        text=True,
        check=False,
    )


def test_contract_fails_when_a_service_imports_another(tmp_path: Path) -> None:
    result = _run(tmp_path, violation=True)
    assert result.returncode != 0, result.stdout
    assert "handoff_order_intake.handlers -> handoff_tracking.fold" in result.stdout
    assert "BROKEN" in result.stdout


def test_contract_passes_without_the_violation(tmp_path: Path) -> None:
    result = _run(tmp_path, violation=False)
    assert result.returncode == 0, result.stdout


def test_contract_holds_on_the_real_tree() -> None:
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout
