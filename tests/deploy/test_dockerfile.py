"""deploy/docker/Dockerfile, linted with our hadolint substitute (tools/k8s/validate.py)."""

from __future__ import annotations

from pathlib import Path

from tools.k8s.validate import dockerfile_problems

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy/docker/Dockerfile").read_text()


def test_the_dockerfile_passes_the_lint_rules() -> None:
    assert dockerfile_problems(DOCKERFILE) == []


def test_the_image_is_one_recipe_for_every_service() -> None:
    assert "ARG SERVICE" in DOCKERFILE
    assert "uv sync --frozen --no-dev --no-editable" in DOCKERFILE
    assert "COPY --from=builder /opt/venv /opt/venv" in DOCKERFILE
    assert "org.opencontainers.image.source" in DOCKERFILE


def test_lint_rules_catch_the_usual_mistakes() -> None:
    bad = """FROM python:latest AS builder
RUN apt-get update && apt-get install -y gcc
RUN pip install uv
FROM python
ADD https://example.com/tool.tar.gz /opt/
RUN apt-get install -y build-essential
USER root
CMD ["python"]
"""
    problems = "\n".join(dockerfile_problems(bad))
    for expected in (
        "uses latest",
        "has no tag",
        "--no-install-recommends",
        "apt lists not removed",
        "--no-cache-dir",
        "ADD of a URL",
        "runs as 'root'",
        "no HEALTHCHECK",
        "no STOPSIGNAL",
        "build tools installed in the final stage",
    ):
        assert expected in problems, expected
    without_user = DOCKERFILE.replace("USER 10001:10001\n", "")
    assert "final stage sets no USER: the service would run as root" in dockerfile_problems(
        without_user
    )
