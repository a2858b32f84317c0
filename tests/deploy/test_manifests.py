"""The Kubernetes manifests: generated from the catalogue, valid against the vendored schemas.

kubeconform and kustomize are built once per machine into .cache/bin (tools/k8s/validate.py);
the schemas live in tools/k8s/schemas, so nothing is fetched from the internet here.
"""

from __future__ import annotations

import copy
import importlib
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from handoff_events import topics
from handoff_events.runtime import metrics
from handoff_events.runtime.settings import ServiceSettings
from prometheus_client.metrics import MetricWrapperBase

from tools.k8s import gen, validate

ROOT = Path(__file__).resolve().parents[2]


@cache
def built(overlay: str) -> tuple[dict[str, Any], ...]:
    return tuple(validate.load_documents(validate.build_overlay(overlay)))


def of_kind(overlay: str, kind: str) -> list[dict[str, Any]]:
    return [d for d in built(overlay) if d["kind"] == kind]


def named(overlay: str, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in of_kind(overlay, kind) if d["metadata"]["name"] == name]
    return copy.deepcopy(doc)


def test_generated_manifests_are_committed_as_generated() -> None:
    stale = [
        str(path.relative_to(ROOT))
        for path, text in gen.outputs().items()
        if not path.exists() or path.read_text() != text
    ]
    assert stale == [], f"run `python tools/k8s/gen.py`: {stale}"


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_overlay_is_valid_against_the_schemas(overlay: str) -> None:
    docs = list(built(overlay))
    verdict = validate.kubeconform(docs)
    assert verdict.invalid == []
    assert verdict.valid == len(docs)
    kinds = {d["kind"] for d in docs}
    assert {
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceAccount",
        "ConfigMap",
        "NetworkPolicy",
        "ScaledObject",
        "TriggerAuthentication",
        "ServiceMonitor",
        "PrometheusRule",
    } <= kinds


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_overlay_meets_the_policies_schemas_cannot_express(overlay: str) -> None:
    assert validate.policy_problems(list(built(overlay))) == []


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[int(last) if last.isdigit() else last] = value
    return doc


def test_kubeconform_rejects_broken_manifests() -> None:
    topic = named("prod", "KafkaTopic", "handoff.marketplace.orders.v1")
    deployment = named("prod", "Deployment", "handoff-tracking")
    broken = {
        "unknown field in a KafkaTopic spec": _set(copy.deepcopy(topic), "spec.retention", "7d"),
        "KafkaTopic partitions as a string": _set(copy.deepcopy(topic), "spec.partitions", "12"),
        "Deployment replicas as a string": _set(copy.deepcopy(deployment), "spec.replicas", "two"),
        "Deployment container without a name": _set(
            copy.deepcopy(deployment), "spec.template.spec.containers.0.name", None
        ),
        "misspelt probe field": _set(
            copy.deepcopy(deployment),
            "spec.template.spec.containers.0.readinessProbe.httpGet.paht",
            "/x",
        ),
        "ScaledObject with an unknown field": _set(
            named("prod", "ScaledObject", "handoff-tracking"), "spec.maxReplicas", 12
        ),
    }
    for label, doc in broken.items():
        verdict = validate.kubeconform([doc])
        assert verdict.valid == 0 and len(verdict.invalid) == 1, label
    # The untouched documents pass, so the rejections above are the mutations' doing.
    assert validate.kubeconform([topic, deployment]).invalid == []


def test_a_kind_without_a_vendored_schema_is_an_error_not_a_skip() -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert validate.kubeconform([doc]).invalid != []


def test_policy_check_rejects_what_the_schema_allows() -> None:
    deployment = named("prod", "Deployment", "handoff-order-intake")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    del container["image"]  # the Kubernetes schema does not require an image
    assert validate.kubeconform([deployment]).invalid == []
    assert any("has no image" in p for p in validate.policy_problems([deployment]))
    container["image"] = "ghcr.io/handoff-dev/handoff-order-intake:latest"
    container["securityContext"]["readOnlyRootFilesystem"] = False
    problems = validate.policy_problems([deployment])
    assert any("not pinned" in p for p in problems)
    assert any("root filesystem is writable" in p for p in problems)
    scaled = named("prod", "ScaledObject", "handoff-order-intake")
    scaled["spec"]["maxReplicaCount"] = 24
    deployment["spec"]["replicas"] = 3
    problems = validate.policy_problems([scaled, deployment])
    assert any("maxReplicaCount 24" in p for p in problems)
    assert any("KEDA owns the replica count" in p for p in problems)


# ---- topics and ACLs against the catalogue -------------------------------------------


@pytest.mark.parametrize(("overlay", "replicas", "min_isr"), [("prod", 3, 2), ("dev", 1, 1)])
def test_every_catalogue_topic_has_its_kafka_topic(
    overlay: str, replicas: int, min_isr: int
) -> None:
    declared = {d["spec"]["topicName"]: d for d in of_kind(overlay, "KafkaTopic")}
    assert set(declared) == {t.name for t in topics.CATALOGUE}
    for spec in topics.CATALOGUE:
        doc = declared[spec.name]
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == gen.KAFKA_CLUSTER
        assert doc["spec"]["partitions"] == (1 if spec.dlq_of else 12), spec.name
        assert doc["spec"]["replicas"] == replicas, spec.name
        assert doc["spec"]["config"] == spec.config(min_isr), spec.name
        assert doc["spec"]["config"]["min.insync.replicas"] == str(min_isr)
        assert doc["spec"]["config"]["cleanup.policy"] == spec.cleanup


def _acl_sets(user: dict[str, Any]) -> dict[tuple[str, str, str], set[str]]:
    out: dict[tuple[str, str, str], set[str]] = {}
    for acl in user["spec"]["authorization"]["acls"]:
        r = acl["resource"]
        out.setdefault((r["type"], r["patternType"], r["name"]), set()).update(acl["operations"])
    return out


@pytest.mark.parametrize("service", topics.SERVICES)
def test_service_acls_are_exactly_the_catalogue(service: topics.Service) -> None:
    acls = _acl_sets(named("prod", "KafkaUser", gen.app_name(service)))
    topic_acls = {name: ops for (kind, _, name), ops in acls.items() if kind == "topic"}
    readable = {n for n, ops in topic_acls.items() if "Read" in ops}
    writable = {n for n, ops in topic_acls.items() if "Write" in ops}
    assert readable == {t.name for t in topics.reads(service)}
    assert writable == {t.name for t in topics.writes(service)}
    assert all(
        ops <= {"Read", "Write", "Describe"} and "Describe" in ops for ops in topic_acls.values()
    )
    assert all(pattern == "literal" for (kind, pattern, _) in acls if kind == "topic")
    # Every consumer may dead-letter what it reads; every changelog owner reads it back.
    for spec in topics.reads(service):
        if not spec.changelog and spec.dlq in topics.BY_NAME:
            assert spec.dlq in writable, spec.dlq
    for spec in topics.writes(service):
        if spec.changelog and spec.owner == service:
            assert spec.name in readable, spec.name
    others = {k: v for k, v in acls.items() if k[0] != "topic"}
    assert others == {
        ("group", "prefix", f"handoff.{service}."): {"Read", "Describe"},
        ("transactionalId", "prefix", f"handoff.{service}."): {"Write", "Describe"},
    }


def test_http_edges_may_write_their_public_inbound_topics() -> None:
    for spec in topics.CATALOGUE:
        if spec.public and spec.writers[0] in ("marketplace", "carrier"):
            for service in spec.writers[1:]:
                acls = _acl_sets(named("prod", "KafkaUser", gen.app_name(service)))
                assert "Write" in acls[("topic", "literal", spec.name)], (service, spec.name)


def test_keda_user_can_only_describe() -> None:
    acls = _acl_sets(named("prod", "KafkaUser", "handoff-keda"))
    assert set().union(*acls.values()) == {"Describe"}


# ---- scaling, workloads, monitoring --------------------------------------------------


@pytest.mark.parametrize("service", topics.SERVICES)
def test_scaled_object_watches_the_service_groups_on_topics_it_reads(
    service: topics.Service,
) -> None:
    scaled = named("prod", "ScaledObject", gen.app_name(service))
    assert scaled["spec"]["maxReplicaCount"] <= 12
    readable = {t.name for t in topics.reads(service)}
    stages = {s.name for s in gen.SHAPES[service].stages}
    for trigger in scaled["spec"]["triggers"]:
        meta = trigger["metadata"]
        assert trigger["type"] == "kafka"
        assert meta["topic"] in readable, (
            f"{service} consumes {meta['topic']} but the topic catalogue does not list it as a "
            "reader: its KafkaUser would be denied the topic and its DLQ (fix topics.py readers)"
        )
        assert meta["consumerGroup"].removeprefix(f"handoff.{service}.") in stages
        assert meta["allowIdleConsumers"] == "false"
    if service == "tracking":
        assert scaled["spec"]["cooldownPeriod"] >= 600


def _settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"handoff_{service}.settings")
    classes = [
        v
        for v in vars(module).values()
        if isinstance(v, type)
        and issubclass(v, ServiceSettings)
        and v.__module__ == module.__name__
    ]
    return classes[-1]


@pytest.mark.parametrize("service", topics.SERVICES)
async def test_stage_table_matches_the_processors_the_service_wires(service: str) -> None:
    # Built inside a running loop (aiokafka clients need one); nothing connects until start().
    bootstrap = importlib.import_module(f"handoff_{service}.bootstrap")
    app = bootstrap.build_app(_settings_class(service)())
    wired = {e.processor.stage: tuple(e.processor.inputs) for e in app.engines}
    assert {s.name: s.inputs for s in gen.SHAPES[service].stages} == wired


def test_grace_period_exceeds_the_drain_budget() -> None:
    drain = ServiceSettings().shutdown_timeout_s
    for overlay in validate.OVERLAYS:
        for dep in of_kind(overlay, "Deployment"):
            assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > drain


def test_pods_mount_every_data_file_where_the_services_look() -> None:
    dep = named("prod", "Deployment", "handoff-notifications")
    pod = dep["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    config_dir = env["HANDOFF_CONFIG_DIR"]
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    config_maps = {d["metadata"]["name"]: d for d in of_kind("prod", "ConfigMap")}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for path in (ROOT / "deploy" / "config").rglob("*"):
        if not path.is_file():
            continue
        rel = path.relative_to(ROOT / "deploy" / "config")
        if rel.parts[0] in gen.NOT_FOR_SERVICES:
            continue
        target = f"{config_dir}/{rel.as_posix()}"
        mount = mounts.get(target) or mounts[f"{config_dir}/{rel.parent.as_posix()}"]
        cm = config_maps[volumes[mount["name"]]["configMap"]["name"]]
        assert cm["data"][path.name] == path.read_text(), rel


def test_dashboard_configmap_is_the_shared_dashboard_file() -> None:
    (cm,) = [
        c
        for c in of_kind("prod", "ConfigMap")
        if c["metadata"]["name"].startswith("handoff-grafana")
    ]
    assert (
        cm["data"]["handoff-dashboard.json"]
        == (ROOT / "deploy/grafana/handoff-dashboard.json").read_text()
    )


def _metric_names() -> set[str]:
    names = set()
    for collector in vars(metrics).values():
        if isinstance(collector, MetricWrapperBase):
            for family in collector.describe():
                names.add(family.name)
                names.update({f"{family.name}_total", f"{family.name}_bucket"})
    return names


def test_alerts_and_dashboard_use_metrics_that_exist() -> None:
    known = _metric_names() | {"up"}
    (rule,) = of_kind("prod", "PrometheusRule")
    exprs = [r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]]
    dashboard = (ROOT / "deploy/grafana/handoff-dashboard.json").read_text()
    used = set(re.findall(r"\b(handoff_[a-z_]+)", " ".join(exprs) + dashboard))
    assert used and used <= known, used - known
    alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    for metric in (
        "handoff_consumer_lag",
        "handoff_dlq_records_total",
        "handoff_transactions_total",
        "handoff_restore_seconds_bucket",
        "handoff_ready",
        "handoff_http_requests_total",
    ):
        assert any(metric in e for e in exprs), metric
    assert len(alerts) == len(exprs)


def test_prometheus_rule_is_the_compose_rule_file() -> None:
    (rule,) = of_kind("prod", "PrometheusRule")
    source = yaml.safe_load((ROOT / "deploy/compose/prometheus/handoff-rules.yml").read_text())
    assert rule["spec"]["groups"] == source["groups"]


def _created_by_strimzi() -> set[str]:
    """The user operator creates one Secret per KafkaUser, named after it."""
    return {u["metadata"]["name"] for u in of_kind("prod", "KafkaUser")}


@pytest.mark.parametrize("overlay", validate.OVERLAYS)
def test_every_reference_resolves(overlay: str) -> None:
    docs = built(overlay)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    secrets = {n for k, n in names if k == "Secret"} | _created_by_strimzi()
    if overlay == "prod":  # created out of band (docs/operating.md)
        secrets |= {f"{gen.app_name(s)}-env" for s in topics.SERVICES}
    missing = []
    for dep in of_kind(overlay, "Deployment"):
        pod = dep["spec"]["template"]["spec"]
        where = dep["metadata"]["name"]
        if ("ServiceAccount", pod["serviceAccountName"]) not in names:
            missing.append(f"{where}: ServiceAccount {pod['serviceAccountName']}")
        for volume in pod["volumes"]:
            if "configMap" in volume and ("ConfigMap", volume["configMap"]["name"]) not in names:
                missing.append(f"{where}: ConfigMap {volume['configMap']['name']}")
        for c in pod["containers"]:
            refs = [e["secretRef"]["name"] for e in c.get("envFrom", []) if "secretRef" in e]
            refs += [
                e["valueFrom"]["secretKeyRef"]["name"]
                for e in c["env"]
                if "secretKeyRef" in e.get("valueFrom", {})
            ]
            missing += [f"{where}: Secret {r}" for r in refs if r not in secrets]
    for auth in of_kind(overlay, "TriggerAuthentication"):
        for ref in auth["spec"]["secretTargetRef"]:
            if ref["name"] not in secrets:
                missing.append(
                    f"TriggerAuthentication/{auth['metadata']['name']}: Secret {ref['name']}"
                )
    for scaled in of_kind(overlay, "ScaledObject"):
        if ("Deployment", scaled["spec"]["scaleTargetRef"]["name"]) not in names:
            missing.append(f"ScaledObject/{scaled['metadata']['name']}: its Deployment")
        for trigger in scaled["spec"]["triggers"]:
            auth = trigger["authenticationRef"]["name"]
            if ("TriggerAuthentication", auth) not in names:
                missing.append(f"ScaledObject/{scaled['metadata']['name']}: {auth}")
    assert missing == []
    # Every KafkaTopic/KafkaUser/KafkaNodePool names the one Kafka cluster.
    (kafka,) = of_kind(overlay, "Kafka")
    for kind in ("KafkaTopic", "KafkaUser", "KafkaNodePool"):
        for doc in of_kind(overlay, kind):
            assert doc["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]


@pytest.mark.parametrize(
    ("overlay", "brokers", "rf", "min_isr"), [("prod", 3, 3, 2), ("dev", 1, 1, 1)]
)
def test_kafka_cluster_durability(overlay: str, brokers: int, rf: int, min_isr: int) -> None:
    (kafka,) = of_kind(overlay, "Kafka")
    config = kafka["spec"]["kafka"]["config"]
    pools = of_kind(overlay, "KafkaNodePool")
    assert sum(p["spec"]["replicas"] for p in pools if "broker" in p["spec"]["roles"]) == brokers
    assert sum(p["spec"]["replicas"] for p in pools if "controller" in p["spec"]["roles"]) in (1, 3)
    assert config["default.replication.factor"] == rf
    assert config["offsets.topic.replication.factor"] == rf
    assert config["transaction.state.log.replication.factor"] == rf
    assert config["min.insync.replicas"] == min_isr
    assert config["transaction.state.log.min.isr"] == min_isr
    assert config["unclean.leader.election.enable"] is False
    assert config["auto.create.topics.enable"] is False
    (listener,) = kafka["spec"]["kafka"]["listeners"]
    assert listener["authentication"]["type"] == "scram-sha-512"
    assert kafka["spec"]["kafka"]["authorization"]["type"] == "simple"
