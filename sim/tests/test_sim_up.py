"""`make up`'s supervisor: the process list, the stop path (no process left behind), `--down`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from handoff_events.runtime.settings import SERVICE_PORTS
from handoff_sim import up
from handoff_sim.scenario import summarise

SERVICES = {
    "order_intake",
    "rate_shopping",
    "carrier_allocation",
    "tracking",
    "notifications",
    "returns",
}


def test_each_service_is_its_own_process_on_its_port() -> None:
    specs = up.processes(up.UpOptions())
    services = {s.name: s for s in specs if s.kind == "service"}
    assert set(services) == SERVICES
    for name, spec in services.items():
        assert spec.module == f"handoff_{name}"
        assert spec.port == SERVICE_PORTS[name]
        assert spec.env["HANDOFF_HTTP_PORT"] == str(SERVICE_PORTS[name])
    kinds = [s.kind for s in specs]
    # dev servers first (services need them), simulators last (they need the services)
    assert kinds.index("service") > max(i for i, k in enumerate(kinds) if k == "dev")
    assert kinds.index("sim") > max(i for i, k in enumerate(kinds) if k == "service")
    tower = next(s for s in specs if s.kind == "tower")
    assert tower.optional and tower.port == SERVICE_PORTS["control_tower"]


def test_port_offset_moves_every_port_and_the_urls_services_are_given(tmp_path: Path) -> None:
    specs = {s.name: s for s in up.processes(up.UpOptions(run_dir=tmp_path, port_offset=1000))}
    assert specs["tracking"].port == SERVICE_PORTS["tracking"] + 1000
    notif = specs["notifications"].env
    assert notif["HANDOFF_SMTP_PORT"] == "3525"
    assert notif["HANDOFF_SMS_PROVIDER_URL"] == "http://127.0.0.1:9092"
    hooks = json.loads(notif["HANDOFF_WEBHOOKS"])
    assert set(hooks) == {"acme", "globex", "northwind"}
    assert hooks["acme"]["url"] == "http://127.0.0.1:9091/hooks/acme"
    tendering = Path(specs["carrier_allocation"].env["HANDOFF_TENDERING_FILE"])
    assert "127.0.0.1:9093/tenders" in tendering.read_text()
    assert "tracking=http://127.0.0.1:9084" in specs["control_tower"].env["HANDOFF_SERVICE_URLS"]
    assert "--tracking-url" in specs["carriers"].args
    assert "http://127.0.0.1:9084" in specs["carriers"].args
    assert "http://127.0.0.1:9081" in specs["marketplace"].args


def test_a_missing_optional_module_is_skipped_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = up.World(up.UpOptions(run_dir=tmp_path))
    spec = up.ProcessSpec("ghost", "handoff_no_such_module_xyz", optional=True)
    assert world._start(spec) is None
    assert "skipped: module handoff_no_such_module_xyz is not installed" in capsys.readouterr().out
    assert world.running == []


STUBBORN = """
import signal, sys, time
if sys.argv[1:] == ["stubborn"]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
while True:
    time.sleep(0.1)
"""


def _stub_specs(tmp_path: Path) -> list[up.ProcessSpec]:
    (tmp_path / "stubproc.py").write_text(STUBBORN)
    env = {"PYTHONPATH": str(tmp_path)}
    return [
        up.ProcessSpec("polite", "stubproc", ("polite",), kind="dev", readiness="alive", env=env),
        up.ProcessSpec(
            "stubborn", "stubproc", ("stubborn",), kind="sim", readiness="alive", env=env
        ),
    ]


def _wait_for_log(path: Path, text: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never said {text!r}")


def test_stop_terms_then_kills_stragglers_and_leaves_nothing(tmp_path: Path) -> None:
    opts = up.UpOptions(run_dir=tmp_path)
    running = [up.launch(opts, "127.0.0.1:1", spec) for spec in _stub_specs(tmp_path)]
    for r in running:
        _wait_for_log(r.log_path, "ready")
    killed = up.stop_processes(running, timeout_s=0.5)
    assert killed == ["stubborn"]
    assert all(r.process.poll() is not None for r in running)
    assert running[0].process.returncode == -signal.SIGTERM
    assert running[1].process.returncode == -signal.SIGKILL


def test_down_signals_the_supervisor_and_cleans_up_leftovers(tmp_path: Path) -> None:
    opts = up.UpOptions(run_dir=tmp_path, stop_timeout_s=0.5)
    # The "supervisor" is gone already (it crashed): down must stop its children itself.
    running = [up.launch(opts, "127.0.0.1:1", spec) for spec in _stub_specs(tmp_path)]
    for r in running:
        _wait_for_log(r.log_path, "ready")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    doc = {
        "supervisor": dead.pid,
        "broker_started": False,
        "processes": [
            {"name": r.spec.name, "pid": r.pid, "module": r.spec.module, "log": ""} for r in running
        ],
    }
    opts.pid_file.write_text(json.dumps(doc))
    assert up.down(opts) == 0
    for r in running:
        r.process.wait(10)
    assert not opts.pid_file.exists()
    assert all(not up._alive(r.pid) for r in running)


def test_down_without_a_world_is_a_no_op(tmp_path: Path) -> None:
    assert up.down(up.UpOptions(run_dir=tmp_path)) == 0


def test_headless_needs_a_duration() -> None:
    with pytest.raises(SystemExit):
        up.parse_args(["--headless"])


def test_summary_counts_orders_shipments_and_kpis() -> None:
    from datetime import UTC, date, datetime

    from handoff_events.contracts import KpiSnapshot, ShipmentState

    now = datetime(2026, 11, 20, tzinfo=UTC)
    oracle = [
        {"kind": "order_placed", "channel": "topic", "shipment_ids": ["s1", "s2"]},
        {"kind": "order_placed", "channel": "http", "defect": "missing_field", "http_status": 422,
         "shipment_ids": []},
        {"kind": "order_cancelled", "channel": "topic"},
    ]  # fmt: skip
    states = {
        "s1": ShipmentState(shipment_id="s1", order_id="o", tenant_id="acme", status="delivered",
                            updated_at=now, version=5, carrier="swift", on_time=True),
        "s2": ShipmentState(shipment_id="s2", order_id="o", tenant_id="acme", status="cancelled",
                            updated_at=now, version=2),
    }  # fmt: skip
    kpis = {
        "k": KpiSnapshot(kpi_key="k", carrier="swift", lane="DE-10>DE-80", tenant_id="acme",
                         day=date(2026, 11, 21), shipments_delivered=4, delivered_on_time=3,
                         first_attempt_deliveries=4, exceptions=0, transit_hours_sum=80.0,
                         transit_hours_p90=22.0, cost_total=None, computed_at=now,
                         shipments_with_promise=4),
    }  # fmt: skip
    summary = summarise(oracle, states, kpis)
    assert summary["orders_sent"] == 2 and summary["orders_invalid_sent"] == 1
    assert summary["orders_refused_over_http"] == 1
    assert summary["shipments_delivered"] == 1 and summary["shipments_allocated"] == 1
    assert summary["shipments_seen_of_expected"] == 2
    assert summary["kpis"]["delivered"] == 4 and summary["kpis"]["on_time_rate"] == 0.75
    assert summary["kpis"]["mean_transit_hours"] == 20.0


def test_no_process_of_the_stub_world_survives_its_process_group(tmp_path: Path) -> None:
    # A child that starts a grandchild: killpg on stop reaches both.
    (tmp_path / "forker.py").write_text(
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print('child', p.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    opts = up.UpOptions(run_dir=tmp_path)
    spec = up.ProcessSpec("forker", "forker", kind="sim", env={"PYTHONPATH": str(tmp_path)})
    running = up.launch(opts, "127.0.0.1:1", spec)
    _wait_for_log(running.log_path, "child")
    grandchild = int(running.log_path.read_text().split("child", 1)[1].split()[0])
    up.stop_processes([running], timeout_s=2.0)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and up._alive(grandchild):
        time.sleep(0.05)
    assert not up._alive(grandchild)
    with pytest.raises(ProcessLookupError):
        os.kill(running.pid, 0)
