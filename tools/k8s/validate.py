"""Offline validation of Handoff's deployment artefacts (used by tests/deploy and by hand).

* ``ensure_tool`` installs kubeconform and kustomize once per machine into ``.cache/bin``
  with ``go install`` (the Go module proxy is the only network access needed);
* ``build_overlay`` renders ``k8s/overlays/<env>`` with kustomize;
* ``kubeconform`` validates documents against the vendored schemas in
  ``tools/k8s/schemas`` (strict: unknown fields are errors), never fetching any;
* ``policy_problems`` checks what the schemas cannot express (images pinned,
  hardened pods, scaling bounded by partitions);
* ``dockerfile_problems`` is our hadolint substitute for deploy/docker/Dockerfile.

    python tools/k8s/validate.py          # build and validate every overlay, lint the Dockerfile
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".cache" / "bin"
SCHEMAS = ROOT / "tools" / "k8s" / "schemas"
OVERLAYS = ("dev", "prod")
TOOLS = {
    "kubeconform": "github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0",
    "kustomize": "sigs.k8s.io/kustomize/kustomize/v5@v5.7.1",
}
SCHEMA_LOCATIONS = (
    str(SCHEMAS / "kubernetes" / "{{.ResourceKind}}{{.KindSuffix}}.json"),
    str(SCHEMAS / "crds" / "{{.Group}}" / "{{.ResourceKind}}_{{.ResourceAPIVersion}}.json"),
)
MAX_REPLICAS = 12  # DEFAULT_PARTITIONS: more consumers than partitions would idle


def ensure_tool(name: str) -> Path:
    """The tool's binary under .cache/bin, installed with `go install` the first time."""
    binary = BIN / name
    if binary.exists():
        return binary
    BIN.mkdir(parents=True, exist_ok=True)
    # Concurrent test sessions: one installs, the others wait for it.
    with open(BIN / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            go = shutil.which("go")
            if go is None:
                raise RuntimeError(f"{name} is not in {BIN} and `go` is not installed to build it")
            env = {**os.environ, "GOBIN": str(BIN), "GOFLAGS": "-buildvcs=false"}
            subprocess.run([go, "install", TOOLS[name]], check=True, env=env, cwd=BIN)
    return binary


def build_overlay(overlay: str) -> str:
    kustomize = ensure_tool("kustomize")
    result = subprocess.run(
        [
            str(kustomize),
            "build",
            "--load-restrictor",
            "LoadRestrictionsNone",
            str(ROOT / "k8s" / "overlays" / overlay),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout


def load_documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


@dataclass(frozen=True)
class Verdict:
    valid: int
    invalid: list[str]
    """One line per rejected resource: kind/name and kubeconform's reason."""


def kubeconform(documents: list[dict[str, Any]] | str) -> Verdict:
    """Validate with the vendored schemas only: a kind without a schema is an error too."""
    text = documents if isinstance(documents, str) else yaml.safe_dump_all(documents)
    args = [str(ensure_tool("kubeconform")), "-strict", "-summary", "-output", "json"]
    for location in SCHEMA_LOCATIONS:
        args += ["-schema-location", location]
    # Exit status 1 means "some resource invalid": the JSON report says which.
    result = subprocess.run([*args, "-"], input=text, capture_output=True, text=True, check=False)
    report = json.loads(result.stdout)
    invalid = [
        f"{r['kind']}/{r['name']}: {r['status']}: {r['msg']}"
        for r in report["resources"]
        if r["status"] != "statusValid"
    ]
    valid = report["summary"]["valid"]
    if result.returncode not in (0, 1) or (result.returncode == 1 and not invalid):
        raise RuntimeError(f"kubeconform failed: {result.stderr or result.stdout}")
    return Verdict(valid=valid, invalid=invalid)


def policy_problems(documents: list[dict[str, Any]]) -> list[str]:
    """Rules the schemas cannot express; every problem names the object and the field."""
    problems: list[str] = []
    scaled = {d["spec"]["scaleTargetRef"]["name"] for d in documents if d["kind"] == "ScaledObject"}
    for doc in documents:
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        keda_owned = doc["kind"] == "Deployment" and doc["metadata"]["name"] in scaled
        if keda_owned and "replicas" in doc["spec"]:
            problems.append(f"{where}: spec.replicas is set but KEDA owns the replica count")
        if doc["kind"] == "Deployment":
            pod = doc["spec"]["template"]["spec"]
            if not pod.get("securityContext", {}).get("runAsNonRoot"):
                problems.append(
                    f"{where}: spec.template.spec.securityContext.runAsNonRoot is not true"
                )
            if (
                pod.get("securityContext", {}).get("seccompProfile", {}).get("type")
                != "RuntimeDefault"
            ):
                problems.append(f"{where}: seccompProfile is not RuntimeDefault")
            for c in pod["containers"]:
                image = c.get("image", "")
                if not image:
                    problems.append(f"{where}: container {c['name']} has no image")
                elif ":" not in image.rsplit("/", 1)[-1] or image.endswith(":latest"):
                    problems.append(f"{where}: container {c['name']} image {image!r} is not pinned")
                sc = c.get("securityContext", {})
                if not sc.get("readOnlyRootFilesystem"):
                    problems.append(f"{where}: container {c['name']} root filesystem is writable")
                if sc.get("capabilities", {}).get("drop") != ["ALL"]:
                    problems.append(
                        f"{where}: container {c['name']} does not drop ALL capabilities"
                    )
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if probe not in c:
                        problems.append(f"{where}: container {c['name']} has no {probe}")
                if "memory" not in c.get("resources", {}).get("limits", {}):
                    problems.append(f"{where}: container {c['name']} has no memory limit")
        if doc["kind"] == "ScaledObject":
            spec = doc["spec"]
            if spec.get("maxReplicaCount", 100) > MAX_REPLICAS:
                problems.append(
                    f"{where}: maxReplicaCount {spec.get('maxReplicaCount')} > partitions"
                )
            for trigger in spec["triggers"]:
                if trigger["metadata"].get("allowIdleConsumers") != "false":
                    problems.append(f"{where}: trigger {trigger.get('name')} allows idle consumers")
    return problems


# ---- Dockerfile ----------------------------------------------------------------------

_PINNED = re.compile(r"^[^:@\s]+(:[\w.\-]+|@sha256:[0-9a-f]{64})$")


def dockerfile_problems(content: str) -> list[str]:
    """hadolint's rules that matter to us, on dockerfile-parse's instruction list."""
    from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

    instructions = DockerfileParser(fileobj=io.BytesIO(content.encode())).structure
    args = {}
    for ins in instructions:
        if ins["instruction"] == "ARG" and "=" in ins["value"]:
            key, _, value = ins["value"].partition("=")
            args[key.strip()] = value.strip()
    problems: list[str] = []
    stages: list[list[dict[str, Any]]] = []
    stage_names: set[str] = set()
    for ins in instructions:
        if ins["instruction"] == "FROM":
            stages.append([])
            image = ins["value"].split()[0]
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
            words = ins["value"].split()
            if len(words) == 3 and words[1].lower() == "as":
                stage_names.add(words[2])
            if image not in stage_names and not _PINNED.match(image):
                problems.append(f"line {ins['startline'] + 1}: base image {image!r} has no tag")
            if image.endswith(":latest"):
                problems.append(f"line {ins['startline'] + 1}: base image {image!r} uses latest")
        elif stages:
            stages[-1].append(ins)
        value = ins["value"]
        if ins["instruction"] == "ADD" and re.search(r"https?://", value):
            problems.append(f"line {ins['startline'] + 1}: ADD of a URL (use a checked download)")
        if ins["instruction"] == "RUN" and "apt-get install" in value:
            if "--no-install-recommends" not in value:
                problems.append(
                    f"line {ins['startline'] + 1}: apt-get install without --no-install-recommends"
                )
            if "rm -rf /var/lib/apt/lists" not in value:
                problems.append(f"line {ins['startline'] + 1}: apt lists not removed after install")
        pip_install = ins["instruction"] == "RUN" and re.search(r"\bpip3? install\b", value)
        if pip_install and "--no-cache-dir" not in value:
            problems.append(f"line {ins['startline'] + 1}: pip install without --no-cache-dir")
    if not stages:
        return [*problems, "no FROM instruction"]
    final = stages[-1]
    users = [i["value"].strip() for i in final if i["instruction"] == "USER"]
    if not users:
        problems.append("final stage sets no USER: the service would run as root")
    elif users[-1].split(":")[0] in ("root", "0"):
        problems.append(f"final stage runs as {users[-1]!r}")
    kinds = {i["instruction"] for i in final}
    if "HEALTHCHECK" not in kinds:
        problems.append("final stage has no HEALTHCHECK")
    if "STOPSIGNAL" not in kinds:
        problems.append("final stage has no STOPSIGNAL")
    for ins in final:
        if ins["instruction"] == "RUN" and re.search(
            r"apt-get install[^&|;]*\b(gcc|build-essential|make|g\+\+)\b", ins["value"]
        ):
            problems.append(
                f"line {ins['startline'] + 1}: build tools installed in the final stage"
            )
    return problems


def main() -> int:
    failed = False
    for overlay in OVERLAYS:
        docs = load_documents(build_overlay(overlay))
        verdict = kubeconform(docs)
        problems = verdict.invalid + policy_problems(docs)
        print(f"{overlay}: {verdict.valid} valid resources, {len(problems)} problems")
        for p in problems:
            print(f"  {p}")
        failed |= bool(problems)
    dockerfile = ROOT / "deploy" / "docker" / "Dockerfile"
    for p in dockerfile_problems(dockerfile.read_text()):
        print(f"{dockerfile.relative_to(ROOT)}: {p}")
        failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
