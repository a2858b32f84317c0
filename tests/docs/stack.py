"""A small Handoff stack for the executed docs: services as subprocesses on one topic prefix.

Each service runs exactly as an operator would run it (`python -m handoff_<service>`),
configured only through the environment, on a free HTTP port and a unique topic prefix so
the docs' snippets can be pointed at it with plain variables (`KAFKA`, `TOPIC_PREFIX`,
`HANDOFF_URL`, ...) while the guides themselves show the defaults.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from handoff_events.provision import provision

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass
class Stack:
    bootstrap: str
    prefix: str
    workdir: Path
    services: dict[str, Service] = field(default_factory=dict)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a snippet runs in: the docs' variables pointed at this stack."""
        env = {
            **os.environ,
            "KAFKA": self.bootstrap,
            "TOPIC_PREFIX": self.prefix,
            "PYTHON": sys.executable,
        }
        if "order_intake" in self.services:
            env["HANDOFF_ORDERS_URL"] = self.services["order_intake"].url
        if "tracking" in self.services:
            env["HANDOFF_TRACKING_URL"] = self.services["tracking"].url
            env["HANDOFF_URL"] = self.services["tracking"].url  # the carrier guide's name
        env.update(extra)
        return env

    def start(self, name: str, module: str) -> None:
        port = free_port()
        state = self.workdir / name
        state.mkdir(parents=True, exist_ok=True)
        log = self.workdir / f"{name}.log"
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "HANDOFF_TOPIC_PREFIX": self.prefix,
            "HANDOFF_PARTITIONS": "3",
            "HANDOFF_HTTP_PORT": str(port),
            "HANDOFF_STATE_DIR": str(state),
            "HANDOFF_CONFIG_DIR": str(REPO / "deploy" / "config"),
            "HANDOFF_LOG_LEVEL": "WARNING",
        }
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", module],
                env=env,
                cwd=state,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.services[name] = Service(name, port, process, log)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        pending = dict(self.services)
        with httpx.Client(timeout=2) as client:
            while pending:
                for name, service in list(pending.items()):
                    if service.process.poll() is not None:
                        raise AssertionError(f"{name} exited before ready:\n{service.tail()}")
                    try:
                        if client.get(f"{service.url}/health/ready").status_code == 200:
                            del pending[name]
                    except httpx.HTTPError:
                        pass
                if pending and time.monotonic() > deadline:
                    tails = "\n".join(f"--- {n}\n{s.tail()}" for n, s in pending.items())
                    raise AssertionError(f"not ready within {timeout_s}s: {tails}")
                if pending:
                    time.sleep(0.2)

    def stop(self) -> dict[str, int | None]:
        for service in self.services.values():
            if service.process.poll() is None:
                service.process.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for name, service in self.services.items():
            try:
                codes[name] = service.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                service.process.kill()
                codes[name] = service.process.wait()
        return codes


def provision_topics(bootstrap: str, prefix: str) -> None:
    asyncio.run(provision(bootstrap, prefix=prefix, partitions=3, replication_factor=1))
