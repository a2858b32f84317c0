"""The local Kafka nodes' JIT options (deploy/kafka/kafkactl.py `jit_opts`): C1 only by
default on these small shared machines, overridable from the environment."""

from __future__ import annotations

import pytest

from tests.support.kafka import kafkactl


def test_default_is_c1_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HANDOFF_KAFKA_JVM_OPTS", raising=False)
    assert kafkactl.jit_opts() == ["-XX:TieredStopAtLevel=1"]


def test_the_environment_replaces_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_KAFKA_JVM_OPTS", "-XX:CICompilerCount=2  -XX:+UseSerialGC")
    assert kafkactl.jit_opts() == ["-XX:CICompilerCount=2", "-XX:+UseSerialGC"]


def test_a_blank_value_means_the_jvm_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_KAFKA_JVM_OPTS", " ")
    assert kafkactl.jit_opts() == []
