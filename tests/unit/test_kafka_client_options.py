"""Every long-lived Kafka client refreshes cluster metadata every 30 s.

With aiokafka's default (5 min) a client keeps asking a partition's old leader that long
after a broker fault: in a chaos run a 15 s broker pause stalled the HTTP tender relay,
whose consumer was built without the refresh, for five minutes. So every consumer and
producer in the services, the shared library and the simulators takes its options from
`ServiceSettings.kafka_client()` (or `producer_defaults`, which includes them); the few
short-lived readers that do not are named here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from handoff_events.runtime.publisher import producer_defaults
from handoff_events.runtime.settings import METADATA_MAX_AGE_MS, ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    *ROOT.glob("libs/*/src/**/*.py"),
    *ROOT.glob("services/*/src/**/*.py"),
    *ROOT.glob("sim/src/**/*.py"),
]
CLIENTS = {"AIOKafkaConsumer", "AIOKafkaProducer"}
SHORT_LIVED = {
    # (file, enclosing function): opened for one read or one command, then closed.
    ("engine.py", "_open_reader"),  # a changelog's offsets, a restore's fetches
    ("cli_ops.py", "consumer"),  # the operator CLI: one command, then exit
    ("cli_ops.py", "_transaction"),
}


def _callee(value: ast.expr) -> str | None:
    if not isinstance(value, ast.Call):
        return None
    func = value.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def _constructions() -> list[tuple[Path, str, set[str]]]:
    """(file, enclosing function, where the client's `**` options come from) for every
    consumer and producer built in the sources: `**x.kafka_client()` gives
    `kafka_client`, and `**common` gives what `common` was assigned from."""
    found = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for func in ast.walk(tree):
            if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            assigned = {
                target.id: _callee(node.value)
                for node in ast.walk(func)
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for node in ast.walk(func):
                if not (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in CLIENTS
                ):
                    continue
                options = set()
                for keyword in node.keywords:
                    if keyword.arg is not None:
                        continue
                    if isinstance(keyword.value, ast.Name):
                        options.add(assigned.get(keyword.value.id))
                    else:
                        options.add(_callee(keyword.value))
                found.append((path, func.name, {o for o in options if o}))
    return found


def test_every_long_lived_client_takes_the_shared_options() -> None:
    constructions = _constructions()
    assert len(constructions) >= 10  # the scan finds the clients, or it proves nothing
    missing = [
        f"{path.relative_to(ROOT)}:{function}"
        for path, function, options in constructions
        if (path.name, function) not in SHORT_LIVED
        and not options & {"kafka_client", "producer_defaults"}
    ]
    assert missing == []


def test_the_shared_options_refresh_metadata_every_30_s() -> None:
    settings = ServiceSettings(kafka_bootstrap_servers="unused:9092")
    assert METADATA_MAX_AGE_MS == 30_000
    assert settings.kafka_client()["metadata_max_age_ms"] == METADATA_MAX_AGE_MS
    assert producer_defaults(settings)["metadata_max_age_ms"] == METADATA_MAX_AGE_MS
