"""docker-compose.yml: the right services, wired by health, valid against the Compose spec."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from handoff_events.runtime.settings import SERVICE_PORTS
from handoff_events.topics import SERVICES

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "tools/k8s/schemas/compose/compose-spec.json").read_text())
SIX = {s.replace("_", "-") for s in SERVICES}


def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    jsonschema.validate(compose(), SCHEMA)


def test_compose_schema_rejects_a_broken_file() -> None:
    broken = copy.deepcopy(compose())
    broken["services"]["tracking"]["depends_on"]["kafka"]["condition"] = "service_up"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)
    broken = copy.deepcopy(compose())
    broken["services"]["tracking"]["helthcheck"] = {}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, SCHEMA)


def test_compose_runs_the_six_services_and_their_infrastructure() -> None:
    assert set(compose()["services"]) == SIX | {
        "kafka",
        "provision-topics",
        "mailpit",
        "prometheus",
        "grafana",
    }


@pytest.mark.parametrize("name", sorted(SIX))
def test_each_service_waits_for_kafka_and_topics_and_reports_readiness(name: str) -> None:
    svc = compose()["services"][name]
    assert svc["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert svc["depends_on"]["provision-topics"]["condition"] == "service_completed_successfully"
    assert "/health/ready" in " ".join(svc["healthcheck"]["test"])
    assert svc["build"]["args"]["SERVICE"] == name.replace("-", "_")
    assert svc["build"]["dockerfile"] == "deploy/docker/Dockerfile"
    port = SERVICE_PORTS[name.replace("-", "_")]
    assert svc["environment"]["HANDOFF_HTTP_PORT"] == str(port)
    assert svc["environment"]["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert svc["stop_grace_period"] == "45s"


def test_single_node_kafka_settings() -> None:
    env = compose()["services"]["kafka"]["environment"]
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"] == 1
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == 1
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "broker,controller" == env["KAFKA_PROCESS_ROLES"]


def test_provisioner_uses_the_handoff_cli_of_the_order_intake_image() -> None:
    prov = compose()["services"]["provision-topics"]
    assert prov["build"]["args"]["SERVICE"] == "order_intake"
    assert prov["entrypoint"] == ["/opt/venv/bin/handoff"]
    assert prov["command"][:2] == ["topics", "provision"]


def test_prometheus_scrapes_every_service_and_grafana_gets_the_dashboard() -> None:
    prom = yaml.safe_load((ROOT / "deploy/compose/prometheus/prometheus.yml").read_text())
    targets = {
        t for job in prom["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]
    }
    assert targets == {f"{name}:{SERVICE_PORTS[name.replace('-', '_')]}" for name in SIX}
    volumes = compose()["services"]["grafana"]["volumes"]
    assert any(v.startswith("./deploy/grafana/handoff-dashboard.json:") for v in volumes)
    dashboard = json.loads((ROOT / "deploy/grafana/handoff-dashboard.json").read_text())
    assert dashboard["uid"] == "handoff-overview" and len(dashboard["panels"]) >= 10
