"""Generate the Kubernetes manifests that must never be maintained by hand twice.

Sources of truth and what is derived from them:

* the topic catalogue (``handoff_events.topics``) -> ``k8s/base/kafka/topics.yaml``
  (one Strimzi ``KafkaTopic`` per catalogue topic) and ``k8s/base/kafka/users.yaml``
  (one ``KafkaUser`` per service whose ACLs are exactly what the catalogue says it
  reads and writes, plus its consumer groups and transactional ids);
* the service table below (stages, ports, which need outbound HTTPS/SMTP) ->
  ``k8s/base/services/<service>.yaml`` (ServiceAccount, Deployment, Service,
  PodDisruptionBudget, NetworkPolicy, KEDA ScaledObject, ServiceMonitor);
* the data files under ``deploy/config`` -> ``k8s/base/config/kustomization.yaml``
  (one ConfigMap per directory, mounted back into the same tree in every pod).

``python tools/k8s/gen.py`` rewrites them; ``--check`` exits 1 when a committed file
differs from what the generator produces (``tests/deploy`` runs the same comparison).
Topics are generated with the production durability (RF 3, min.insync.replicas 2);
the dev overlay patches them down to a single broker.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from handoff_events.runtime.settings import SERVICE_PORTS, ServiceSettings
from handoff_events.topics import (
    CATALOGUE,
    DEFAULT_PARTITIONS,
    SERVICES,
    Service,
    partitions_for,
    reads,
    writes,
)

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "k8s" / "base"
CONFIG_DIR = ROOT / "deploy" / "config"
RULES = ROOT / "deploy" / "compose" / "prometheus" / "handoff-rules.yml"
OPERATING = ROOT / "docs" / "operating.md"

KAFKA_CLUSTER = "handoff-kafka"
KAFKA_BOOTSTRAP = f"{KAFKA_CLUSTER}-kafka-bootstrap:9092"
PROD_REPLICAS = 3
PROD_MIN_ISR = 2
IMAGE_REGISTRY = "ghcr.io/handoff-dev"
IMAGE_TAG = "0.1.0"
CONFIG_MOUNT = "/etc/handoff/config"
STATE_MOUNT = "/var/lib/handoff/state"
# settings.shutdown_timeout_s (20 s) bounds the drain; the kubelet waits longer before SIGKILL.
TERMINATION_GRACE_S = 45


@dataclass(frozen=True)
class Stage:
    name: str
    inputs: tuple[str, ...]


@dataclass(frozen=True)
class ServiceShape:
    """What the manifests need to know about a service that the catalogue does not say."""

    stages: tuple[Stage, ...]
    egress_ports: tuple[int, ...] = ()
    """Outbound ports beyond Kafka and DNS (carrier APIs, webhooks, SMTP submission)."""
    memory: str = "512Mi"
    cooldown_s: int = 300
    min_replicas: int = 1


# Stages and their input topics, as wired in each service's bootstrap/handlers
# (StatefulProcessor(service=..., stage=..., inputs=...)). KEDA watches the lag of
# each (group, topic) pair. tests/deploy compares this table with the processors
# each service's build_app() really wires, and checks every input is a catalogue
# topic the service reads (else its ACLs would deny it).
SHAPES: dict[str, ServiceShape] = {
    "order_intake": ServiceShape(
        stages=(
            Stage("orders", ("handoff.marketplace.orders.v1",)),
            Stage(
                "cancellations",
                ("handoff.order_intake.cancellations.v1", "handoff.shipments.updates.v1"),
            ),
        ),
        min_replicas=2,  # it serves the marketplaces' synchronous HTTP API
    ),
    "rate_shopping": ServiceShape(
        stages=(
            Stage("quotes", ("handoff.order_intake.shipments.v1", "handoff.returns.shipments.v1")),
        ),
        egress_ports=(443,),  # carrier rating APIs
    ),
    "carrier_allocation": ServiceShape(
        stages=(
            Stage(
                "shipments",
                (
                    "handoff.rate_shopping.quotes.v1",
                    "handoff.carrier_allocation.capacity.v1",
                    "handoff.carrier.tender-replies.v1",
                    "handoff.order_intake.shipments.v1",
                    "handoff.returns.shipments.v1",
                ),
            ),
            Stage("buckets", ("handoff.carrier_allocation.capacity-requests.v1",)),
        ),
        egress_ports=(443,),  # tenders POSTed to carriers integrated by HTTP
    ),
    "tracking": ServiceShape(
        stages=(
            Stage("join", ("handoff.carrier.tracking.v1", "handoff.tracking.tracking-numbers.v1")),
            Stage(
                "fold",
                (
                    "handoff.order_intake.shipments.v1",
                    "handoff.rate_shopping.quotes.v1",
                    "handoff.carrier_allocation.allocations.v1",
                    "handoff.tracking.observations.v1",
                    "handoff.notifications.outcomes.v1",
                    "handoff.returns.returns.v1",
                    "handoff.returns.shipments.v1",
                ),
            ),
            Stage("kpis", ("handoff.tracking.kpi-contributions.v1",)),
        ),
        # Every instance's read model keeps every shipment (~4.9 KB), the fold ~12 KB per
        # shipment of its partitions once decoded plus its derivation cache (~0.2 GB at
        # most): 2 Gi holds ~100,000 shipments at two replicas. Nothing expires yet, so
        # raise it with the shipment count (docs/operating.md, "Sizing an instance").
        memory="2Gi",
        # Moving a partition costs a restore of the fold's store: scale in slowly.
        cooldown_s=600,
        min_replicas=2,  # carriers' webhooks land here
    ),
    "notifications": ServiceShape(
        stages=(
            Stage(
                "dispatch", ("handoff.shipments.updates.v1", "handoff.order_intake.shipments.v1")
            ),
        ),
        egress_ports=(443, 587),  # webhooks and SMS over HTTPS, e-mail by SMTP submission
    ),
    "returns": ServiceShape(
        stages=(
            Stage(
                "requests", ("handoff.marketplace.returns.v1", "handoff.returns.order-shipments.v1")
            ),
            Stage(
                "ledger",
                (
                    "handoff.returns.requests-by-shipment.v1",
                    "handoff.shipments.updates.v1",
                    "handoff.order_intake.shipments.v1",
                    "handoff.returns.returns.v1",
                ),
            ),
        ),
    ),
}


def dns_name(name: str) -> str:
    """Kubernetes names allow neither underscores nor upper case."""
    return name.replace("_", "-").lower()


def app_name(service: str) -> str:
    return f"handoff-{dns_name(service)}"


def labels(service: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app_name(service), "app.kubernetes.io/part-of": "handoff"}


# ---- Kafka: topics and users ---------------------------------------------------------


def kafka_topics() -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaTopic",
            "metadata": {
                "name": dns_name(spec.name),
                "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, "handoff.dev/owner": spec.owner},
            },
            "spec": {
                "topicName": spec.name,
                "partitions": partitions_for(spec, DEFAULT_PARTITIONS),
                "replicas": PROD_REPLICAS,
                "config": spec.config(PROD_MIN_ISR),
            },
        }
        for spec in CATALOGUE
    ]


def _acl(kind: str, name: str, pattern: str, operations: list[str]) -> dict[str, Any]:
    return {
        "resource": {"type": kind, "name": name, "patternType": pattern},
        "operations": operations,
        "host": "*",
    }


def service_acls(service: Service) -> list[dict[str, Any]]:
    """Exactly the catalogue's reads and writes, plus the service's own groups and transactions.

    Read covers consumers, restores (changelogs) and group-less followers; Write covers
    stream outputs, DLQs (a consumer writes its input's DLQ: the catalogue lists it as a
    writer) and the HTTP edges' publishers. Groups and transactional ids are prefixed
    `handoff.<service>.` (stream/engine.py), so one prefix ACL each covers every stage.
    """
    read = sorted(t.name for t in reads(service))
    written = sorted(t.name for t in writes(service))
    acls = [_acl("topic", name, "literal", ["Read", "Describe"]) for name in read]
    acls += [_acl("topic", name, "literal", ["Write", "Describe"]) for name in written]
    acls.append(_acl("group", f"handoff.{service}.", "prefix", ["Read", "Describe"]))
    acls.append(_acl("transactionalId", f"handoff.{service}.", "prefix", ["Write", "Describe"]))
    return acls


def kafka_users() -> list[dict[str, Any]]:
    users = [
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaUser",
            "metadata": {
                "name": app_name(service),
                "labels": {"strimzi.io/cluster": KAFKA_CLUSTER, **labels(service)},
            },
            "spec": {
                "authentication": {"type": "scram-sha-512"},
                "authorization": {"type": "simple", "acls": service_acls(service)},
            },
        }
        for service in SERVICES
    ]
    # KEDA reads committed offsets and log-end offsets to compute lag: describe only.
    users.append(
        {
            "apiVersion": "kafka.strimzi.io/v1",
            "kind": "KafkaUser",
            "metadata": {"name": "handoff-keda", "labels": {"strimzi.io/cluster": KAFKA_CLUSTER}},
            "spec": {
                "authentication": {"type": "scram-sha-512"},
                "authorization": {
                    "type": "simple",
                    "acls": [
                        _acl("topic", "handoff.", "prefix", ["Describe"]),
                        _acl("group", "handoff.", "prefix", ["Describe"]),
                    ],
                },
            },
        }
    )
    return users


# ---- per-service workloads -----------------------------------------------------------


# Data files of the load generator (handoff_sim), not of any service.
NOT_FOR_SERVICES = ("sim",)


def config_directories() -> list[Path]:
    """Every directory under deploy/config holding service data files: one ConfigMap each."""
    dirs = {
        p.parent
        for p in CONFIG_DIR.rglob("*")
        if p.is_file() and p.relative_to(CONFIG_DIR).parts[0] not in NOT_FOR_SERVICES
    }
    return sorted(dirs)


def config_map_name(directory: Path) -> str:
    rel = directory.relative_to(CONFIG_DIR).as_posix()
    return "handoff-config" if rel == "." else f"handoff-config-{dns_name(rel.replace('/', '-'))}"


def config_kustomization() -> dict[str, Any]:
    generators = []
    for directory in config_directories():
        files = sorted(p for p in directory.iterdir() if p.is_file())
        generators.append(
            {
                "name": config_map_name(directory),
                "files": [
                    Path("../../../deploy/config", p.relative_to(CONFIG_DIR)).as_posix()
                    for p in files
                ],
            }
        )
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "generatorOptions": {"labels": {"app.kubernetes.io/part-of": "handoff"}},
        "configMapGenerator": generators,
    }


def _config_volumes() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    volumes, mounts = [], []
    for directory in config_directories():
        name = config_map_name(directory)
        rel = directory.relative_to(CONFIG_DIR).as_posix()
        volumes.append({"name": name, "configMap": {"name": name}})
        if rel == ".":
            # Files at the top level are mounted one by one: the directory itself
            # holds the other ConfigMaps' mount points.
            for f in sorted(p.name for p in directory.iterdir() if p.is_file()):
                mounts.append(
                    {
                        "name": name,
                        "mountPath": f"{CONFIG_MOUNT}/{f}",
                        "subPath": f,
                        "readOnly": True,
                    }
                )
        else:
            mounts.append({"name": name, "mountPath": f"{CONFIG_MOUNT}/{rel}", "readOnly": True})
    return volumes, mounts


def _probe(path: str, period: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": failures,
    }


def deployment(service: str) -> dict[str, Any]:
    shape = SHAPES[service]
    name = app_name(service)
    port = SERVICE_PORTS[service]
    config_volumes, config_mounts = _config_volumes()
    env = [
        {"name": "KAFKA_BOOTSTRAP_SERVERS", "value": KAFKA_BOOTSTRAP},
        {"name": "HANDOFF_KAFKA_SECURITY_PROTOCOL", "value": "SASL_PLAINTEXT"},
        {"name": "HANDOFF_KAFKA_SASL_MECHANISM", "value": "SCRAM-SHA-512"},
        {"name": "HANDOFF_KAFKA_SASL_USERNAME", "value": name},
        {
            "name": "HANDOFF_KAFKA_SASL_PASSWORD",
            # The Secret the Strimzi user operator creates for the KafkaUser.
            "valueFrom": {"secretKeyRef": {"name": name, "key": "password"}},
        },
        {"name": "HANDOFF_HTTP_HOST", "value": "0.0.0.0"},
        {"name": "HANDOFF_HTTP_PORT", "value": str(port)},
        {"name": "HANDOFF_STATE_DIR", "value": STATE_MOUNT},
        {"name": "HANDOFF_CONFIG_DIR", "value": CONFIG_MOUNT},
        {"name": "HANDOFF_PARTITIONS", "value": str(DEFAULT_PARTITIONS)},
        {"name": "HANDOFF_LOG_JSON", "value": "true"},
        {
            "name": "HANDOFF_INSTANCE_ID",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
        },
    ]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels(service)},
        "spec": {
            # No `replicas`: KEDA owns the count (minReplicaCount..12), and a value here
            # would reset it on every `kubectl apply`.
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            # One pod at a time: each move of a partition costs its new owner a restore.
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": {
                "metadata": {"labels": labels(service)},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": 10001,
                        "runAsGroup": 10001,
                        "fsGroup": 10001,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "topologySpreadConstraints": [
                        {
                            "maxSkew": 1,
                            "topologyKey": "kubernetes.io/hostname",
                            "whenUnsatisfiable": "ScheduleAnyway",
                            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": name}},
                        }
                    ],
                    "containers": [
                        {
                            "name": dns_name(service),
                            "image": f"{IMAGE_REGISTRY}/{name}:{IMAGE_TAG}",
                            "imagePullPolicy": "IfNotPresent",
                            "ports": [{"name": "http", "containerPort": port, "protocol": "TCP"}],
                            "env": env,
                            # HANDOFF_API_KEYS, carrier/webhook/SMTP secrets: created out of
                            # band in prod (docs/operating.md), generated in the dev overlay.
                            "envFrom": [{"secretRef": {"name": f"{name}-env"}}],
                            "startupProbe": _probe("/health/live", 5, 60),
                            "livenessProbe": _probe("/health/live", 10, 3),
                            # Not ready while stores restore: no traffic, no rollout progress.
                            "readinessProbe": _probe("/health/ready", 5, 2),
                            "resources": {
                                "requests": {"cpu": "100m", "memory": "256Mi"},
                                "limits": {"memory": shape.memory},
                            },
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "state", "mountPath": STATE_MOUNT},
                                {"name": "tmp", "mountPath": "/tmp"},
                                *config_mounts,
                            ],
                        }
                    ],
                    "volumes": [
                        # Snapshots only shorten restores; the changelog is the truth.
                        {"name": "state", "emptyDir": {"sizeLimit": "1Gi"}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        *config_volumes,
                    ],
                },
            },
        },
    }


def service_objects(service: str) -> list[dict[str, Any]]:
    shape = SHAPES[service]
    name = app_name(service)
    port = SERVICE_PORTS[service]
    selector = {"app.kubernetes.io/name": name}
    egress: list[dict[str, Any]] = [
        {
            "to": [
                {
                    "podSelector": {
                        "matchLabels": {
                            "strimzi.io/cluster": KAFKA_CLUSTER,
                            "strimzi.io/kind": "Kafka",
                        }
                    }
                }
            ],
            "ports": [{"protocol": "TCP", "port": 9092}],
        },
        {
            "to": [
                {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
            ],
            "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
        },
    ]
    if shape.egress_ports:
        egress.append({"ports": [{"protocol": "TCP", "port": p} for p in shape.egress_ports]})
    triggers = [
        {
            "type": "kafka",
            "name": f"{stage.name}-{dns_name(topic).replace('.', '-')}",
            "metadata": {
                "bootstrapServers": KAFKA_BOOTSTRAP,
                "consumerGroup": f"handoff.{service}.{stage.name}",
                "topic": topic,
                "lagThreshold": "500",
                "activationLagThreshold": "0",
                "offsetResetPolicy": "earliest",
                # More consumers than partitions would idle: never scale past them.
                "allowIdleConsumers": "false",
                "sasl": "scram_sha512",
                "tls": "disable",
            },
            "authenticationRef": {"name": "handoff-keda-kafka"},
        }
        for stage in shape.stages
        for topic in stage.inputs
    ]
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "labels": labels(service)},
            "automountServiceAccountToken": False,
        },
        deployment(service),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": name, "labels": labels(service)},
            "spec": {
                "selector": selector,
                "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
            },
        },
        {
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": {"name": name, "labels": labels(service)},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": name, "labels": labels(service)},
            "spec": {
                "podSelector": {"matchLabels": selector},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": port}]}],
                "egress": egress,
            },
        },
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": name, "labels": labels(service)},
            "spec": {
                "scaleTargetRef": {"name": name},
                "pollingInterval": 30,
                "cooldownPeriod": shape.cooldown_s,
                "minReplicaCount": shape.min_replicas,
                # A consumer group never uses more members than partitions.
                "maxReplicaCount": DEFAULT_PARTITIONS,
                "advanced": {
                    "horizontalPodAutoscalerConfig": {
                        "behavior": {
                            "scaleDown": {
                                "stabilizationWindowSeconds": shape.cooldown_s,
                                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 120}],
                            }
                        }
                    }
                },
                "triggers": triggers,
            },
        },
        {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": {"name": name, "labels": labels(service)},
            "spec": {
                "selector": {"matchLabels": selector},
                "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
            },
        },
    ]


def prometheus_rule() -> dict[str, Any]:
    """The compose Prometheus's rule file, as a prometheus-operator PrometheusRule."""
    rules = yaml.safe_load(RULES.read_text())
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "handoff", "labels": {"app.kubernetes.io/part-of": "handoff"}},
        "spec": {"groups": rules["groups"]},
    }


# ---- the operator's tables in docs/operating.md -------------------------------------


def _retention(days_ms: int) -> str:
    return "forever (compacted)" if days_ms < 0 else f"{days_ms // (24 * 3600 * 1000)} d"


def topics_table() -> str:
    rows = [
        "| topic | owner | also written by | read by | partitions | cleanup | retention |",
        "|---|---|---|---|---|---|---|",
    ]
    for spec in CATALOGUE:
        retention = -1 if spec.cleanup == "compact" else spec.retention_ms
        rows.append(
            f"| `{spec.name}` | {spec.owner} | {', '.join(spec.writers[1:]) or '-'} "
            f"| {', '.join(spec.readers) or '-'} | {partitions_for(spec, DEFAULT_PARTITIONS)} "
            f"| {spec.cleanup} | {_retention(retention)} |"
        )
    return "\n".join(rows)


def groups_table() -> str:
    rows = [
        "| service | stage | consumer group | transactional ids | inputs |",
        "|---|---|---|---|---|",
    ]
    for service in SERVICES:
        for stage in SHAPES[service].stages:
            group = f"handoff.{service}.{stage.name}"
            inputs = "<br>".join(f"`{t}`" for t in stage.inputs)
            rows.append(
                f"| {service} | {stage.name} | `{group}` | `{group}.<instance>` | {inputs} |"
            )
    return "\n".join(rows)


def operating_doc(current: str) -> str:
    """Replace the generated blocks of docs/operating.md, keep the prose around them."""
    for block, body in (("topics", topics_table()), ("groups", groups_table())):
        begin, end = f"<!-- BEGIN GENERATED {block} -->", f"<!-- END GENERATED {block} -->"
        head, found, rest = current.partition(begin)
        if not found:
            raise ValueError(f"{OPERATING}: marker {begin!r} is missing")
        _, found, tail = rest.partition(end)
        if not found:
            raise ValueError(f"{OPERATING}: marker {end!r} is missing")
        current = f"{head}{begin}\n{body}\n{end}{tail}"
    return current


# ---- output --------------------------------------------------------------------------

HEADER = (
    "# GENERATED by tools/k8s/gen.py from {source}: do not edit, run `python tools/k8s/gen.py`.\n"
)


def _dump(docs: list[dict[str, Any]], source: str) -> str:
    body: str = yaml.safe_dump_all(docs, sort_keys=False, default_flow_style=False, width=100)
    return HEADER.format(source=source) + body


def outputs() -> dict[Path, str]:
    files = {
        BASE / "kafka" / "topics.yaml": _dump(kafka_topics(), "handoff_events.topics.CATALOGUE"),
        BASE / "kafka" / "users.yaml": _dump(kafka_users(), "handoff_events.topics (reads/writes)"),
        BASE / "config" / "kustomization.yaml": _dump([config_kustomization()], "deploy/config"),
        BASE / "monitoring" / "prometheusrule.yaml": _dump(
            [prometheus_rule()], "deploy/compose/prometheus/handoff-rules.yml"
        ),
    }
    files[OPERATING] = operating_doc(OPERATING.read_text())
    for service in SERVICES:
        files[BASE / "services" / f"{dns_name(service)}.yaml"] = _dump(
            service_objects(service), "tools/k8s/gen.py SHAPES"
        )
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a committed file is stale")
    args = parser.parse_args(argv)
    # The drain budget the Deployments grant must exceed what the services take.
    assert ServiceSettings().shutdown_timeout_s < TERMINATION_GRACE_S
    stale = []
    for path, text in outputs().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"stale: {path.relative_to(ROOT)} (run python tools/k8s/gen.py)", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
