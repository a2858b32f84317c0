"""Scenario 3, the peer: the same fold written with Quix Streams (bench/quix_peer.py),
measured with exactly the steps of scenario 2 on the same broker in the same run."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from bench.common import (
    OBSERVATIONS,
    PARTITIONS,
    PEER_VENV,
    QUIX_VERSION,
    REPO,
    STATE,
    Row,
    Worker,
    at_least,
    create_topic,
    provision_catalogue,
    say,
    spawn,
)
from bench.scenarios.fold import measure, rows_for

if TYPE_CHECKING:
    from bench.run import Bench


def ensure_peer_venv() -> str:
    """Create .cache/bench-peer-venv with quixstreams (pinned) once; it sees the workspace
    packages of .venv through a .pth file placed after its own site-packages."""
    python = PEER_VENV / "bin" / "python"
    uv = REPO / ".cache" / "uv-venv" / "bin" / "uv"
    if not python.exists():
        say("peer: creating .cache/bench-peer-venv")
        subprocess.run([str(uv), "venv", "-q", "--python", "python3.11", str(PEER_VENV)],
                       check=True)  # fmt: skip
    probe = subprocess.run(
        [str(python), "-c", "import quixstreams; print(quixstreams.__version__)"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if probe.stdout.strip() != QUIX_VERSION:
        subprocess.run(
            [str(uv), "pip", "install", "-q", "--python", str(python),
             f"quixstreams=={QUIX_VERSION}"],
            check=True,
        )  # fmt: skip
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    workspace = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c",
         "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    pth = f"{site}/zz_handoff_workspace.pth"
    with open(pth, "w") as handle:
        handle.write(f"import site; site.addsitedir({workspace!r})\n")
    return str(python)


async def run(bench: Bench) -> list[Row]:
    python = ensure_peer_venv()
    prefix = f"peer{bench.stamp}."

    def start(p: str) -> Worker:
        rep = bench.work / "quix-peer.json"
        argv = [
            python, str(REPO / "bench" / "quix_peer.py"), "--bootstrap", bench.bootstrap,
            "--prefix", p, "--report", str(rep), "--state-dir", str(bench.work / "quix-state"),
        ]  # fmt: skip
        return spawn("quix-peer", argv, bench.logs, env={"PYTHONWARNINGS": "ignore"}, report=rep)

    # Quix creates its changelog topic itself and reads its metadata right away; on a
    # loaded broker the new topic is not visible yet and the app dies with
    # TopicNotFoundError. Created up front (same name, partitions and policy) it is found.
    await provision_catalogue(bench.bootstrap, prefix)
    changelog = f"changelog__{prefix}quix-peer.fold--{prefix}{OBSERVATIONS}--default"
    await create_topic(bench.bootstrap, changelog, PARTITIONS, **{"cleanup.policy": "compact"})
    result = await measure(bench, "peer", start, prefix, STATE)
    bench.results["peer"] = result
    rows = rows_for(f"Quix Streams {QUIX_VERSION} peer", result, None)
    fold = bench.results.get("fold")
    if fold:
        ratio = fold["throughput"]["events_per_s"] / result["throughput"]["events_per_s"]
        rows.append(Row("Quix Streams peer", "Handoff ÷ Quix Streams (throughput)", ratio, "x",
                        "≥ 1.0", at_least(ratio, 1.0)))  # fmt: skip
    else:
        rows.append(Row.na("Quix Streams peer", "Handoff ÷ Quix Streams (throughput)", "x",
                           "the fold scenario did not run", "≥ 1.0"))  # fmt: skip
    return rows
