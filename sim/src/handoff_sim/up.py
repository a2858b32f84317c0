"""`make up`: the whole delivery world on one machine, and `make down` to stop it.

`python -m handoff_sim.up` starts, in order: the Kafka broker (the embedded
single node from `deploy/kafka/kafkactl.py`, unless `KAFKA_BOOTSTRAP_SERVERS`
names a cluster to use instead), the topics (`handoff topics provision`), the
development servers (SMTP sink, fake SMS provider, marketplace webhook
receiver, simulated carriers answering tenders), the six services — each a
separate process with its own consumer groups, as in production — the control
tower when it is installed, and finally the simulated carriers and
marketplaces. Every process logs to `.run/logs/<name>.log`; their pids are in
`.run/up.json`.

`Ctrl-C` (or `python -m handoff_sim.up --down` from another shell, which
signals the supervisor recorded in the pid file) stops everything in reverse
order: SIGTERM to each process group, a grace period, SIGKILL for stragglers.

`--headless --duration N --seed S` runs a fixed scenario instead: N seconds of
orders, a drain until the shipments settle, then a summary (orders sent,
shipments allocated and delivered, KPIs) on stdout and in `.run/summary.json`,
and everything is stopped.

The process list is data (`processes()`): adding a process is one entry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from handoff_events.runtime.settings import SERVICE_PORTS, ServiceSettings

from handoff_sim.scenario import (
    WorldView,
    expected_shipments,
    read_oracle,
    settled,
    summarise,
)

Kind = Literal["dev", "service", "tower", "sim"]
Readiness = Literal["http", "tcp", "alive", "none"]
REPO_ROOT = Path(__file__).resolve().parents[3]
KAFKACTL = REPO_ROOT / "deploy" / "kafka" / "kafkactl.py"
DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
DEV_PORTS: Mapping[str, int] = {
    "webhook_receiver": 8091,
    "sms_provider": 8092,
    "tender_http": 8093,
    "smtp": 2525,
}
SIM_TENANTS = ("acme", "globex", "northwind")
SERVICES = (
    "order_intake",
    "rate_shopping",
    "carrier_allocation",
    "tracking",
    "notifications",
    "returns",
)


@dataclass(frozen=True)
class ProcessSpec:
    """One process of the local world."""

    name: str
    module: str
    """Run as `python -m <module> <args>`."""
    args: tuple[str, ...] = ()
    kind: Kind = "service"
    port: int | None = None
    readiness: Readiness = "http"
    """http: GET /health/ready answers 200; tcp: the port accepts; alive: still running after 1 s."""
    optional: bool = False
    """Skip it (with a note) when the module is not installed."""
    env: Mapping[str, str] = field(default_factory=dict)
    urls: tuple[tuple[str, str], ...] = ()
    """What to print once it runs: (label, url)."""


@dataclass(frozen=True)
class UpOptions:
    run_dir: Path = Path(".run")
    seed: int = 42
    orders_per_second: float = 1.0
    duration_s: float | None = None
    time_scale: float = 3600.0
    day_length_s: float = 600.0
    port_offset: int = 0
    partitions: int = 12
    topic_prefix: str = ""
    headless: bool = False
    drain_s: float = 60.0
    ready_timeout_s: float = 180.0
    stop_timeout_s: float = 25.0
    summary_path: Path | None = None
    bootstrap: str | None = None
    """An existing cluster to use (from KAFKA_BOOTSTRAP_SERVERS); None starts the local broker."""

    @property
    def logs(self) -> Path:
        return self.run_dir / "logs"

    @property
    def mail(self) -> Path:
        return self.run_dir / "mail"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "up.json"

    def port(self, base: int) -> int:
        return base + self.port_offset


def processes(opts: UpOptions) -> list[ProcessSpec]:
    """Everything `make up` runs, in start order (stopped in reverse)."""
    port = opts.port
    api = "http://127.0.0.1:{}"
    webhooks = {
        tenant: {
            "url": f"{api.format(port(DEV_PORTS['webhook_receiver']))}/hooks/{tenant}",
            "key_id": f"{tenant}-dev-1",
            "secret": f"dev-webhook-secret-{tenant}",
        }
        for tenant in SIM_TENANTS
    }
    receiver_keys: list[str] = []
    for tenant in SIM_TENANTS:
        receiver_keys += ["--key", f"{tenant}-dev-1=dev-webhook-secret-{tenant}"]
    specs = [
        ProcessSpec(
            "smtp_sink",
            "handoff_sim.smtp_sink",
            ("--dir", str(opts.mail), "--port", str(port(DEV_PORTS["smtp"]))),
            kind="dev",
            port=port(DEV_PORTS["smtp"]),
            readiness="tcp",
            urls=(("mail (.eml files)", str(opts.mail.resolve())),),
        ),
        ProcessSpec(
            "sms_provider",
            "handoff_sim.sms_provider",
            ("--port", str(port(DEV_PORTS["sms_provider"]))),
            kind="dev",
            port=port(DEV_PORTS["sms_provider"]),
            readiness="tcp",
            urls=(("SMS sent", f"{api.format(port(DEV_PORTS['sms_provider']))}/v1/messages"),),
        ),
        ProcessSpec(
            "webhook_receiver",
            "handoff_sim.webhook_receiver",
            ("--port", str(port(DEV_PORTS["webhook_receiver"])), *receiver_keys),
            kind="dev",
            port=port(DEV_PORTS["webhook_receiver"]),
            readiness="tcp",
            urls=(
                (
                    "marketplace webhooks",
                    f"{api.format(port(DEV_PORTS['webhook_receiver']))}/deliveries",
                ),
            ),
        ),
        ProcessSpec(
            "tender_responder",
            "handoff_sim.tender_responder",
            ("--seed", str(opts.seed), "--http-port", str(port(DEV_PORTS["tender_http"]))),
            kind="dev",
            port=port(DEV_PORTS["tender_http"]),
            readiness="tcp",
        ),
    ]
    service_env: dict[str, dict[str, str]] = {
        "notifications": {
            "HANDOFF_SMTP_PORT": str(port(DEV_PORTS["smtp"])),
            "HANDOFF_SMS_PROVIDER_URL": api.format(port(DEV_PORTS["sms_provider"])),
            "HANDOFF_WEBHOOKS": json.dumps(webhooks),
        },
    }
    if opts.port_offset:
        # velo is tendered over HTTP at the URL in tendering.toml: point it at the offset port.
        service_env["carrier_allocation"] = {
            "HANDOFF_TENDERING_FILE": str(_offset_tendering_file(opts))
        }
    for service in SERVICES:
        service_port = port(SERVICE_PORTS[service])
        base = api.format(service_port)
        specs.append(
            ProcessSpec(
                service,
                f"handoff_{service}",
                kind="service",
                port=service_port,
                env={"HANDOFF_HTTP_PORT": str(service_port), **service_env.get(service, {})},
                urls=((f"{service} API", f"{base}/openapi.json"),),
            )
        )
    tower_port = port(SERVICE_PORTS["control_tower"])
    scrape = ",".join(f"{s}={api.format(port(SERVICE_PORTS[s]))}" for s in SERVICES)
    specs.append(
        ProcessSpec(
            "control_tower",
            "handoff_control_tower",
            kind="tower",
            port=tower_port,
            optional=True,
            env={"HANDOFF_HTTP_PORT": str(tower_port), "HANDOFF_SERVICE_URLS": scrape},
            urls=(("control tower", f"http://127.0.0.1:{tower_port}/"),),
        )
    )
    specs.append(
        ProcessSpec(
            "carriers",
            "handoff_sim",
            (
                "carriers",
                "--seed",
                str(opts.seed),
                "--time-scale",
                str(opts.time_scale),
                "--tracking-url",
                api.format(port(SERVICE_PORTS["tracking"])),
                "--stats",
                str(opts.run_dir / "sim" / "carriers.json"),
            ),
            kind="sim",
            readiness="alive",
        )
    )
    marketplace_args = [
        "marketplace",
        "--seed",
        str(opts.seed),
        "--orders-per-second",
        str(opts.orders_per_second),
        "--day-length",
        str(opts.day_length_s),
        "--order-intake-url",
        api.format(port(SERVICE_PORTS["order_intake"])),
        "--returns-url",
        api.format(port(SERVICE_PORTS["returns"])),
        "--oracle",
        str(opts.run_dir / "oracle" / "marketplace.jsonl"),
        "--stats",
        str(opts.run_dir / "sim" / "marketplace.json"),
    ]
    if opts.duration_s is not None:
        marketplace_args += ["--duration", str(opts.duration_s), "--linger", "86400"]
    specs.append(
        ProcessSpec(
            "marketplace", "handoff_sim", tuple(marketplace_args), kind="sim", readiness="alive"
        )
    )
    return specs


def _offset_tendering_file(opts: UpOptions) -> Path:
    """A copy of tendering.toml whose local tender URLs point at the offset ports."""
    source = REPO_ROOT / "deploy" / "config" / "allocation" / "tendering.toml"
    text = source.read_text(encoding="utf-8")
    base = DEV_PORTS["tender_http"]
    text = text.replace(f"127.0.0.1:{base}/", f"127.0.0.1:{opts.port(base)}/")
    target = opts.run_dir / "config" / "tendering.toml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    return target.resolve()


# ---- output -------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def note(message: str) -> None:
    print(f"    {message}", flush=True)


# ---- processes ----------------------------------------------------------------------------


@dataclass
class Running:
    spec: ProcessSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


def _module_available(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def child_env(opts: UpOptions, bootstrap: str, spec: ProcessSpec) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "HANDOFF_TOPIC_PREFIX": opts.topic_prefix,
            "HANDOFF_PARTITIONS": str(opts.partitions),
            "HANDOFF_STATE_DIR": str((opts.run_dir / "state" / spec.name).resolve()),
            "HANDOFF_LOG_JSON": env.get("HANDOFF_LOG_JSON", "true"),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(spec.env)
    return env


def launch(opts: UpOptions, bootstrap: str, spec: ProcessSpec) -> Running:
    opts.logs.mkdir(parents=True, exist_ok=True)
    log_path = opts.logs / f"{spec.name}.log"
    with log_path.open("ab") as log_file:
        log_file.write(
            f"\n---- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting {spec.name}\n".encode()
        )
        log_file.flush()
        process = subprocess.Popen(
            [sys.executable, "-m", spec.module, *spec.args],
            cwd=REPO_ROOT,
            env=child_env(opts, bootstrap, spec),
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own process group: Ctrl-C reaches only the supervisor, which stops the
            # children in order; killpg also reaches anything a child started.
            start_new_session=True,
        )
    return Running(spec, process, log_path)


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


async def _probe(client: httpx.AsyncClient, running: Running) -> bool:
    spec = running.spec
    if spec.readiness == "none":
        return True
    if spec.readiness == "alive":
        return running.process.poll() is None
    assert spec.port is not None
    if spec.readiness == "tcp":
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", spec.port)
        except OSError:
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
    try:
        response = await client.get(f"http://127.0.0.1:{spec.port}/health/ready", timeout=2.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


class WorldFailed(RuntimeError):
    pass


async def wait_ready(group: Sequence[Running], timeout_s: float) -> None:
    """Wait until every process of the group is ready, printing each as it becomes ready."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    started = loop.time()
    waiting = list(group)
    async with httpx.AsyncClient() as client:
        if any(r.spec.readiness == "alive" for r in waiting):
            await asyncio.sleep(1.0)
        while waiting:
            for running in list(waiting):
                code = running.process.poll()
                if code is not None:
                    raise WorldFailed(
                        f"{running.spec.name} exited with code {code} while starting; "
                        f"last lines of {running.log_path}:\n{tail(running.log_path)}"
                    )
                if await _probe(client, running):
                    waiting.remove(running)
                    note(f"{running.spec.name:<18} ready ({loop.time() - started:.1f} s)")
            if not waiting:
                return
            if loop.time() > deadline:
                names = ", ".join(r.spec.name for r in waiting)
                detail = "\n".join(f"--- {r.log_path}\n{tail(r.log_path, 10)}" for r in waiting)
                raise WorldFailed(f"not ready after {timeout_s:.0f} s: {names}\n{detail}")
            await asyncio.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes (its parent has not reaped it yet).
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def stop_processes(running: Sequence[Running], timeout_s: float) -> list[str]:
    """SIGTERM in reverse start order (a kind at a time), wait, SIGKILL stragglers.

    Returns the names of processes that had to be killed.
    """
    killed: list[str] = []
    order: list[Kind] = ["sim", "tower", "service", "dev"]
    for kind in order:
        group = [r for r in reversed(running) if r.spec.kind == kind and r.process.poll() is None]
        if not group:
            continue
        for r in group:
            _signal_group(r.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(r.process.poll() is None for r in group):
            time.sleep(0.1)
        for r in group:
            if r.process.poll() is None:
                killed.append(r.spec.name)
                _signal_group(r.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    r.process.wait(5)
            # Anything the child left in its group goes too.
            _signal_group(r.pid, signal.SIGKILL)
    return killed


# ---- the broker ---------------------------------------------------------------------------


def _kafkactl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(KAFKACTL), *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def local_broker_running() -> bool:
    status = _kafkactl("status")
    return any(
        line.split()[:3] == ["single", "single", "running"] for line in status.stdout.splitlines()
    )


def start_local_broker(opts: UpOptions) -> bool:
    """Start the embedded single node; True if this run started it (and so stops it).

    `kafkactl start` runs even when the node is up: it then only takes the node over
    from a test session (clears its mark), so the tests' "last one out" never stops
    the broker under this world.
    """
    already = local_broker_running()
    if already:
        note(f"local Kafka broker already running on {DEFAULT_BOOTSTRAP} (left running on stop)")
    else:
        note("starting the local Kafka broker (deploy/kafka/kafkactl.py start --wait 120) …")
    log_path = opts.logs / "kafkactl.log"
    with log_path.open("ab") as log_file:
        result = subprocess.run(
            [sys.executable, str(KAFKACTL), "start", "--wait", "120"],
            cwd=REPO_ROOT,
            check=False,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise WorldFailed(f"the Kafka broker did not start; see {log_path}:\n{tail(log_path)}")
    if not already:
        note(f"Kafka broker running on {DEFAULT_BOOTSTRAP}")
    return not already


def stop_local_broker() -> None:
    note("stopping the local Kafka broker")
    _kafkactl("stop")


def provision(opts: UpOptions, bootstrap: str) -> None:
    log_path = opts.logs / "provision.log"
    env = dict(
        os.environ, KAFKA_BOOTSTRAP_SERVERS=bootstrap, HANDOFF_TOPIC_PREFIX=opts.topic_prefix
    )
    with log_path.open("ab") as log_file:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "handoff_events.cli",
                "topics",
                "provision",
                "--partitions",
                str(opts.partitions),
            ],
            cwd=REPO_ROOT,
            check=False,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise WorldFailed(f"provisioning failed; see {log_path}:\n{tail(log_path)}")
    note(f"topics provisioned (prefix {opts.topic_prefix!r}, {opts.partitions} partitions)")


# ---- the pid file -------------------------------------------------------------------------


def write_pid_file(
    opts: UpOptions, bootstrap: str, broker_started: bool, running: Sequence[Running]
) -> None:
    doc = {
        "supervisor": os.getpid(),
        "bootstrap": bootstrap,
        "topic_prefix": opts.topic_prefix,
        "broker_started": broker_started,
        "processes": [
            {"name": r.spec.name, "pid": r.pid, "module": r.spec.module, "log": str(r.log_path)}
            for r in running
        ],
    }
    opts.pid_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = opts.pid_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(opts.pid_file)


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def down(opts: UpOptions) -> int:
    """Stop a world started by `make up` (from another shell): ask its supervisor, then make sure."""
    if not opts.pid_file.exists():
        say(f"nothing to stop ({opts.pid_file} not found)")
        return 0
    doc = json.loads(opts.pid_file.read_text())
    supervisor = int(doc.get("supervisor", 0))
    if supervisor and _alive(supervisor) and "handoff_sim.up" in _cmdline(supervisor):
        say(f"stopping the world (supervisor pid {supervisor}) …")
        os.kill(supervisor, signal.SIGTERM)
        deadline = time.monotonic() + opts.stop_timeout_s * 4 + 30
        while time.monotonic() < deadline and _alive(supervisor):
            time.sleep(0.2)
    leftovers = [
        p
        for p in doc.get("processes", [])
        if _alive(int(p["pid"])) and p["module"] in _cmdline(int(p["pid"]))
    ]
    for p in leftovers:
        note(f"stopping leftover {p['name']} (pid {p['pid']})")
        _signal_group(int(p["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + opts.stop_timeout_s
    while time.monotonic() < deadline and any(_alive(int(p["pid"])) for p in leftovers):
        time.sleep(0.2)
    for p in leftovers:
        if _alive(int(p["pid"])):
            note(f"killing {p['name']} (pid {p['pid']})")
            _signal_group(int(p["pid"]), signal.SIGKILL)
    if supervisor and _alive(supervisor):
        with contextlib.suppress(ProcessLookupError):
            os.kill(supervisor, signal.SIGKILL)
    if doc.get("broker_started") and local_broker_running():
        stop_local_broker()
    with contextlib.suppress(FileNotFoundError):
        opts.pid_file.unlink()
    say("stopped")
    return 0


# ---- the supervisor -----------------------------------------------------------------------


class World:
    def __init__(self, opts: UpOptions):
        self.opts = opts
        self.running: list[Running] = []
        self.bootstrap = opts.bootstrap or DEFAULT_BOOTSTRAP
        self.broker_started = False
        self.stop_requested = asyncio.Event()

    def _start(self, spec: ProcessSpec) -> Running | None:
        if spec.optional and not _module_available(spec.module):
            note(f"{spec.name:<18} skipped: module {spec.module} is not installed")
            return None
        running = launch(self.opts, self.bootstrap, spec)
        self.running.append(running)
        write_pid_file(self.opts, self.bootstrap, self.broker_started, self.running)
        note(f"{spec.name:<18} started (pid {running.pid}, log {running.log_path})")
        return running

    async def start(self) -> None:
        opts = self.opts
        for path in (opts.logs, opts.mail, opts.run_dir / "sim", opts.run_dir / "oracle"):
            path.mkdir(parents=True, exist_ok=True)
        # A fresh oracle per run: it describes this run's inputs only.
        with contextlib.suppress(FileNotFoundError):
            (opts.run_dir / "oracle" / "marketplace.jsonl").unlink()
        say("Kafka")
        if opts.bootstrap is None:
            self.broker_started = await asyncio.to_thread(start_local_broker, opts)
        else:
            note(f"using the cluster at {opts.bootstrap} (KAFKA_BOOTSTRAP_SERVERS)")
        write_pid_file(opts, self.bootstrap, self.broker_started, self.running)
        say("topics")
        await asyncio.to_thread(provision, opts, self.bootstrap)
        specs = processes(opts)
        for kinds, title in (
            (("dev",), "development servers (SMTP sink, SMS provider, webhook receiver, tenders)"),
            (("service",), "services (each its own process and consumer groups)"),
            (("tower",), "control tower"),
            (("sim",), "simulated carriers and marketplaces"),
        ):
            group = [s for s in specs if s.kind in kinds]
            say(title)
            started = [r for r in map(self._start, group) if r is not None]
            if started:
                await wait_ready(started, opts.ready_timeout_s)

    def print_urls(self) -> None:
        say("the delivery world is up")
        for r in self.running:
            for label, url in r.spec.urls:
                note(f"{label:<24} {url}")
        note(f"{'logs':<24} {self.opts.logs.resolve()}/<name>.log")
        note(f"{'orders sent (oracle)':<24} {(self.opts.run_dir / 'oracle').resolve()}")
        note(f"{'Kafka':<24} {self.bootstrap} (topic prefix {self.opts.topic_prefix!r})")

    def _exited(self, reported: set[str]) -> list[str]:
        """Report processes that exited since the last call; returns those that failed."""
        failed = []
        for r in self.running:
            code = r.process.poll()
            if code is not None and r.spec.name not in reported:
                reported.add(r.spec.name)
                if r.spec.name == "marketplace" and code == 0:
                    note("marketplace finished sending orders")
                else:
                    failed.append(r.spec.name)
                    note(f"{r.spec.name} exited with code {code}; last lines of {r.log_path}:")
                    print(tail(r.log_path, 8), flush=True)
        return failed

    def _settings(self) -> ServiceSettings:
        return ServiceSettings(
            kafka_bootstrap_servers=self.bootstrap,
            topic_prefix=self.opts.topic_prefix,
            partitions=self.opts.partitions,
        )

    async def watch(self, status_every_s: float = 15.0) -> None:
        """Interactive: run until Ctrl-C / SIGTERM, reporting processes that exit and, every
        `status_every_s`, how many orders were sent and where their shipments are."""
        reported: set[str] = set()
        view = WorldView(self._settings())
        await view.start()
        loop = asyncio.get_running_loop()
        printed = loop.time()
        oracle_path = self.opts.run_dir / "oracle" / "marketplace.jsonl"
        try:
            while not self.stop_requested.is_set():
                self._exited(reported)
                if loop.time() - printed >= status_every_s:
                    printed = loop.time()
                    summary = summarise(read_oracle(oracle_path), view.states, view.kpis)
                    note(
                        f"orders {summary['orders_sent']}, shipments {summary['shipments_seen']}, "
                        f"allocated {summary['shipments_allocated']}, "
                        f"delivered {summary['shipments_delivered']}, "
                        f"returns {summary['return_shipments']}, "
                        f"KPI buckets {summary['kpis']['buckets']}"
                    )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop_requested.wait(), 1.0)
        finally:
            await view.stop()

    async def scenario(self) -> dict[str, Any]:
        """Headless: wait out the orders, drain until the shipments settle, summarise."""
        opts = self.opts
        view = WorldView(self._settings())
        await view.start()
        loop = asyncio.get_running_loop()
        reported: set[str] = set()
        try:
            duration = opts.duration_s or 0.0
            orders_end = loop.time() + duration
            say(f"scenario: {duration:.0f} s of orders (seed {opts.seed}), then a drain")
            while loop.time() < orders_end and not self.stop_requested.is_set():
                if self._exited(reported):
                    raise WorldFailed("a process of the world failed during the scenario")
                await asyncio.sleep(1.0)
            drain_end = loop.time() + opts.drain_s
            oracle_path = opts.run_dir / "oracle" / "marketplace.jsonl"
            last: tuple[int, ...] = ()
            last_change = printed = loop.time()
            while loop.time() < drain_end and not self.stop_requested.is_set():
                if self._exited(reported):
                    raise WorldFailed("a process of the world failed during the scenario")
                delivered = sum(1 for s in view.states.values() if s.status == "delivered")
                progress = (view.state_records, len(view.kpis))
                if progress != last:
                    last, last_change = progress, loop.time()
                if loop.time() - printed >= 3.0:
                    printed = loop.time()
                    note(
                        f"drain: {len(view.states)} shipments, {delivered} delivered, "
                        f"{len(view.kpis)} KPI buckets"
                    )
                if settled(view.states, expected_shipments(read_oracle(oracle_path))):
                    note("every shipment reached a final status")
                    break
                if delivered and loop.time() - last_change > 12.0:
                    note("nothing moved for 12 s: settled")
                    break
                await asyncio.sleep(1.0)
        finally:
            await view.stop()
        # Stop the simulators first, so their counters are on disk for the summary.
        sims = [r for r in self.running if r.spec.kind == "sim"]
        await asyncio.to_thread(stop_processes, sims, opts.stop_timeout_s)
        extra: dict[str, Any] = {"seed": opts.seed, "duration_s": opts.duration_s}
        for name in ("marketplace", "carriers"):
            stats = opts.run_dir / "sim" / f"{name}.json"
            with contextlib.suppress(OSError, ValueError):
                extra[f"{name}_stats"] = json.loads(stats.read_text())
        oracle = read_oracle(opts.run_dir / "oracle" / "marketplace.jsonl")
        return summarise(oracle, view.states, view.kpis, extra)

    def stop(self) -> None:
        say("stopping")
        killed = stop_processes(self.running, self.opts.stop_timeout_s)
        if killed:
            note(f"killed after {self.opts.stop_timeout_s:.0f} s: {', '.join(killed)}")
        if self.broker_started:
            stop_local_broker()
        with contextlib.suppress(FileNotFoundError):
            self.opts.pid_file.unlink()
        say("stopped; no process left behind")


def _already_running(opts: UpOptions) -> int | None:
    if not opts.pid_file.exists():
        return None
    with contextlib.suppress(ValueError, OSError):
        pid = int(json.loads(opts.pid_file.read_text()).get("supervisor", 0))
        if pid and _alive(pid) and "handoff_sim.up" in _cmdline(pid):
            return pid
    return None


async def run(opts: UpOptions) -> int:
    other = _already_running(opts)
    if other is not None:
        say(f"a world is already running (supervisor pid {other}): `make down` first")
        return 1
    world = World(opts)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, world.stop_requested.set)
    code = 0
    try:
        starting = asyncio.create_task(world.start())
        stopper = asyncio.create_task(world.stop_requested.wait())
        await asyncio.wait([starting, stopper], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            with contextlib.suppress(asyncio.CancelledError, WorldFailed):
                await starting
            return 130
        stopper.cancel()
        starting.result()
        world.print_urls()
        if opts.headless:
            summary = await world.scenario()
            text = json.dumps(summary, indent=2, sort_keys=True)
            say("summary")
            print(text, flush=True)
            path = opts.summary_path or opts.run_dir / "summary.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text + "\n")
            note(f"written to {path}")
        else:
            note("press Ctrl-C (or run `make down`) to stop everything")
            await world.watch()
    except WorldFailed as exc:
        say(f"failed: {exc}")
        code = 1
    finally:
        await asyncio.to_thread(world.stop)
    return code


def parse_args(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, UpOptions]:
    parser = argparse.ArgumentParser(
        prog="python -m handoff_sim.up",
        description="Run the whole delivery world locally: Kafka, topics, the six services, "
        "the development servers, the control tower, and the simulated carriers and "
        "marketplaces. Ctrl-C or `--down` stops everything.",
        epilog="Environment: KAFKA_BOOTSTRAP_SERVERS (use that cluster, start no broker), "
        "HANDOFF_TOPIC_PREFIX (isolate topics and groups), HANDOFF_PARTITIONS. "
        "Logs: <run-dir>/logs/<name>.log; pids: <run-dir>/up.json. See docs/local-world.md.",
    )
    parser.add_argument("--down", action="store_true", help="stop a running world and exit")
    parser.add_argument("--headless", action="store_true", help="run a fixed scenario, print a "
                        "summary and stop (needs --duration)")  # fmt: skip
    parser.add_argument("--duration", type=float, default=None, metavar="S",
                        help="seconds of orders (headless: then drain and stop)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=42, help="seed of marketplaces and carriers")
    parser.add_argument("--orders-per-second", type=float, default=1.0, metavar="R",
                        help="mean order rate over a simulated day (default 1)")  # fmt: skip
    parser.add_argument("--time-scale", type=float, default=3600.0, metavar="X",
                        help="simulated seconds per real second for carrier scans "
                        "(default 3600: one simulated hour per second)")  # fmt: skip
    parser.add_argument("--day-length", type=float, default=600.0, metavar="S",
                        help="real seconds per simulated day of the order curve (default 600)")  # fmt: skip
    parser.add_argument("--drain", type=float, default=60.0, metavar="S",
                        help="headless: longest wait for shipments to settle after the orders")  # fmt: skip
    parser.add_argument("--port-offset", type=int, default=0, metavar="N",
                        help="add N to every HTTP/SMTP port (run beside another world)")  # fmt: skip
    parser.add_argument("--run-dir", type=Path, default=Path(".run"),
                        help="logs, mail, pid file, oracle (default .run)")  # fmt: skip
    parser.add_argument("--ready-timeout", type=float, default=180.0, metavar="S")
    parser.add_argument("--stop-timeout", type=float, default=25.0, metavar="S",
                        help="grace period after SIGTERM before SIGKILL")  # fmt: skip
    parser.add_argument("--summary", type=Path, default=None, help="headless summary JSON path")
    args = parser.parse_args(argv)
    if args.headless and args.duration is None:
        parser.error("--headless needs --duration")
    settings = ServiceSettings()
    run_dir = args.run_dir if args.run_dir.is_absolute() else REPO_ROOT / args.run_dir
    opts = UpOptions(
        run_dir=run_dir,
        seed=args.seed,
        orders_per_second=args.orders_per_second,
        duration_s=args.duration,
        time_scale=args.time_scale,
        day_length_s=args.day_length,
        port_offset=args.port_offset,
        partitions=settings.partitions,
        topic_prefix=settings.topic_prefix,
        headless=args.headless,
        drain_s=args.drain,
        ready_timeout_s=args.ready_timeout,
        stop_timeout_s=args.stop_timeout,
        summary_path=args.summary,
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
    )
    return args, opts


def main(argv: Sequence[str] | None = None) -> int:
    args, opts = parse_args(argv)
    if args.down:
        return down(opts)
    return asyncio.run(run(opts))


if __name__ == "__main__":
    raise SystemExit(main())
