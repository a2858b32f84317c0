"""Fixtures for the executed guides: one Handoff stack per session, a scratch copy of
docs/examples/ per test, and a runner for the guides' marked bash blocks."""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.docs.mdblocks import script
from tests.docs.stack import REPO, Stack, provision_topics

DOCS = REPO / "docs"
Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """order_intake and tracking as OS processes, on topics of their own."""
    if shutil.which("kcat") is None:
        pytest.fail("kcat is not installed: run `make docs-tools` (make test does)", pytrace=False)
    prefix = f"docs{uuid.uuid4().hex[:8]}."
    provision_topics(kafka_bootstrap, prefix)
    running = Stack(kafka_bootstrap, prefix, tmp_path_factory.mktemp("stack"))
    running.start("order_intake", "handoff_order_intake")
    running.start("tracking", "handoff_tracking")
    try:
        running.wait_ready(timeout_s=90)
        yield running
    finally:
        codes = running.stop()
    assert codes == {"order_intake": 0, "tracking": 0}, "a service did not drain cleanly"


@pytest.fixture
def examples_dir(tmp_path: Path) -> Path:
    """A scratch copy of docs/examples/: the guides' commands run there."""
    target = tmp_path / "examples"
    shutil.copytree(DOCS / "examples", target)
    return target


@pytest.fixture
def run_snippet(stack: Stack, examples_dir: Path) -> Run:
    """Run the bash block marked `<!-- test: name -->` of a guide against the stack."""

    def run(
        guide: str, name: str, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["bash", "-c", script(DOCS / guide, name)],
            cwd=examples_dir,
            env=stack.env(**env),
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
        if check:
            assert result.returncode == 0, (
                f"{guide} `{name}` failed:\n{result.stdout}\n{result.stderr}"
            )
        return result

    return run
